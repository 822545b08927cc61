"""`./lab demo`: a cloud user's story on the lab, from image to ssh.

A Debian 12 image (built offline, cached) goes into the archipelago store; a VM is
created from it (a zero-copy clone), personalized by snf-image with the lab's ssh key and
a password given as a secret OS parameter, boots from its own disk under TCG, gets its
lease from nfdhcpd and answers ssh with the injected key; meanwhile the cloud layer's
view (snf-events tail) is recorded and shown.
"""

from __future__ import annotations

import subprocess

from labkit import cluster, ganeti_release, settings, vms
from labkit.progress import step
from labkit.sh import await_line, in_node, on_master, stored_secret

PROFILE = "limited"  # admits ssh (TCP 22); `protected` would drop it


def password() -> str:
    return stored_secret(settings.STATE_DIR / "demo-password")


def ensure_instance(image: str) -> str:
    """Create (or start) the demo VM; returns what the cloud layer heard meanwhile."""
    name = settings.DEMO_INSTANCE
    existing = {row["name"]: row for row in cluster.instances()}
    if name in existing and existing[name]["status"] == "running":
        return ""
    tail = subprocess.Popen(
        in_node(settings.MASTER, ["snf-events", "tail", "--url", settings.AMQP_URL,
                                  "--idle-exit", "15"]),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # Its queue bound before the first job starts: it says so on its first line.
        await_line(tail, tail.stdout, "listening")
        if name not in existing:
            argv = vms.add_argv(
                name, image, node=settings.MASTER, backend=vms.DEBIAN_BACKEND,
                profile=PROFILE, password=password(),
            )  # fmt: skip
            cluster.gnt(*argv, timeout=900)
        else:
            cluster.gnt("gnt-instance", "startup", name, timeout=300)
        out, _ = tail.communicate(timeout=120)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    return "".join(line for line in out.splitlines(keepends=True) if name in line)


def run_demo() -> None:
    name = settings.DEMO_INSTANCE
    node = settings.MASTER
    with step("Debian 12 image (mmdebstrap, cached) in the archipelago store"):
        image = vms.debian_image_name()
    with step(f"{name}: a clone of {image}, personalized by snf-image, booting from its disk"):
        stream = ensure_instance(image)
    ip = cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.ip/0", name).stdout.strip()
    with step(f"{name} gets its lease from nfdhcpd and answers ping at {ip}"):
        vms.wait_for(f"{name} answering ping", lambda: vms.pings(node, ip), 240)
    with step(f"ssh root@{ip} with the key snf-image injected"):
        vms.wait_ssh(node, ip, 240)
        inside = vms.ssh(
            node, ip,
            "hostname; . /etc/os-release; echo $PRETTY_NAME; uname -r; "
            "ip -br -4 addr show eth0; ls /etc/ssh/ssh_host_*_key.pub | wc -l",
        ).stdout  # fmt: skip
    if stream:
        print("\nWhat the cloud layer received over AMQP meanwhile (snf-events tail):")
        print(stream, end="")
    print(f"\nssh -i {vms.KEY_FILE} root@{ip} (from {node.name}):")
    for line in inside.splitlines():
        print(f"    {line}")
    ganeti = ".".join(map(str, ganeti_release.installed_version()))
    summary = SUMMARY.format(
        ganeti=ganeti, inst=name, image=image, key=vms.KEY_FILE, ip=ip, profile=PROFILE
    )
    print(summary, end="")
    listing = ["gnt-instance", "list", "-o", "name,os,pnode,status,disk_template,nic.ips"]
    print(on_master(listing).stdout, end="")


SUMMARY = """
What was done:
  - a Ganeti {ganeti} cluster (cluster.ganeti.test) in network namespace `gnt`, hypervisors
    fake and kvm (qemu under TCG), disk templates diskless, file, sharedfile, ext;
  - network net1 (198.51.100.0/24, 2001:db8:100::/64, tag nfdhcpd) on bridge br0;
  - RabbitMQ on the namespace's loopback; a RAPI user for tests;
  - the suite's packages built from this tree and installed with apt, their daemons
    started from their systemd units on every node (snf-ganeti-eventd, nfdhcpd);
  - an archipelago store on XFS (reflinks) at /srv/archipelago, shared by the nodes;
    image {image} built from Debian packages with mmdebstrap and imported into it;
  - instance {inst}: a zero-copy clone of the image (`archipelago df`), personalized by
    snf-image in its helper VM (host name, the lab's ssh key, a root password given as
    a secret OS parameter, fresh host keys, network), booting from its own disk; its
    NIC set up by snf-network (anti-spoofing, firewall profile `{profile}` from its
    tag, a binding for nfdhcpd, which answered its DHCP).

Look around:
  ./lab status; ./lab exec gnt-instance list
  ./lab exec -- ssh -i {key} root@{ip}
  archipelago image list; archipelago volume list; archipelago df
  ./lab exec -- socat - UNIX-CONNECT:/run/ganeti/kvm-hypervisor/ctrl/{inst}.serial
  ./lab exec -- snf-events tail --url amqp://guest:guest@127.0.0.1:5672//
  ./lab exec -- nft list ruleset; ls /var/lib/nfdhcpd
  ./lab down

"""
