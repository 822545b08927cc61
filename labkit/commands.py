"""The lab's commands: up, down, status, exec, demo, test."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labkit import (
    cluster,
    debs,
    guest,
    health,
    host,
    hostguard,
    images,
    net,
    nodes,
    rabbit,
    services,
    settings,
    suiteconf,
)
from labkit.progress import say, step
from labkit.sh import LabError, in_node, on_master, run, stored_secret
from labkit.teardown import teardown


def prepare_host() -> None:
    if os.geteuid() != 0:
        raise SystemExit(
            "lab: error: run the lab as root (it creates namespaces and installs packages)"
        )
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with step("host packages"):
        installed = host.ensure_packages(settings.HOST_PACKAGES)
        host.ensure_kernel_switches()
        if installed:
            say(f"    installed: {' '.join(installed)}")


def build_and_install() -> bool:
    """Build and install this tree's packages; True when a new build was installed."""
    with step("build the suite's .deb packages"):
        digest, suite_debs = debs.build_suite()
        nfqueue = debs.build_netfilterqueue()
    with step("install the suite's packages with apt"):
        installed = debs.install(digest, suite_debs, [nfqueue])
        if not installed:
            say("    already installed: this build")
    return installed


def ensure_helper(rebuild: bool) -> None:
    """The helper VM carries the installed tasks' code: rebuild it with every new build."""
    manifest = Path("/var/lib/snf-image/helper/manifest.json")
    if rebuild or not manifest.exists():
        suiteconf.configure()
        run(["snf-image-update-helper"], timeout=900)
    else:
        say("    already built for this build")


def ensure_services(restart: bool) -> None:
    for index in range(1, health.recorded_nodes() + 1):
        node = settings.NODES[index]
        for service in settings.LAB_SERVICES:
            if services.unit_file(service) is None:
                continue
            if restart:
                services.stop(service, node)
            services.start(service, node)


def _bring_up_master() -> None:
    master = settings.MASTER
    kernel, initrd = guest.assets()
    hostguard.record()
    with step(f"namespace {master.netns} with bridge {settings.BRIDGE}"):
        net.create_node_network(master)
        cluster.prepare_storage_dirs()
    with step(f"sshd on {master.name}"):
        nodes.start_sshd(master)
    with step(f"Ganeti cluster init ({settings.CLUSTER_NAME})"):
        if not cluster.master_answers():
            cluster.init_cluster(kernel, initrd)
    with step("cluster settings, RAPI user"):
        cluster.relax_instance_policy()
        cluster.ensure_rapi_user()
    settings.NODES_FILE.write_text("1\n")


def _add_node2() -> None:
    node = settings.NODES[2]
    with step(f"namespace {node.netns} linked to {settings.MASTER.netns}"):
        net.create_node_network(node)
        net.link_nodes(settings.MASTER, node)
    with step(f"sshd on {node.name}"):
        nodes.start_sshd(node)
        nodes.authorize_master_key(node)
    with step(f"gnt-node add {node.name}"):
        if node.name not in cluster.node_names():
            cluster.add_node(node)
    settings.NODES_FILE.write_text("2\n")


def _remove_node2() -> None:
    node = settings.NODES[2]
    with step(f"remove {node.name}"):
        if node.name in cluster.node_names():
            cluster.remove_node(node)
        net.delete_namespace(node.netns)
    settings.NODES_FILE.write_text("1\n")


@contextmanager
def lab_lock() -> Iterator[None]:
    """One `up` or `down` at a time: a second one waits instead of tearing into the first."""
    settings.LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(settings.LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another ./lab up or down is running: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(wanted_nodes: int | None) -> None:
    with lab_lock():
        _up(wanted_nodes)


def _up(wanted_nodes: int | None) -> None:
    prepare_host()
    new_build = build_and_install()
    with step("guest kernel and initramfs"):
        guest.ensure_assets()
    with step("snf-image helper VM (snf-image-update-helper)"):
        ensure_helper(rebuild=new_build)
    state = health.assess()
    # A rebuilt lab keeps the size it had, unless asked otherwise.
    wanted = wanted_nodes or max(state.nodes, 1)
    if not state.healthy and not state.absent:
        reason = ", ".join(state.problems() or state.leftovers)
        with step(f"clear a half-dead lab ({reason})"):
            teardown()
        state = health.assess()
    if not state.healthy:
        _bring_up_master()
    current = health.recorded_nodes()
    if wanted == 2 and current < 2:
        _add_node2()
    elif wanted == 1 and current == 2:
        _remove_node2()
    with step("RabbitMQ"):
        rabbit.ensure()
    with step("Ganeti network net1 (IPv4 + IPv6, tag nfdhcpd)"):
        cluster.ensure_network()
    with step("the suite's OS and ExtStorage provider are valid"):
        check_suite_recognised()
    with step(f"daemons from their systemd units: {', '.join(settings.LAB_SERVICES)}"):
        ensure_services(restart=suiteconf.configure() or new_build)
    say(f"lab is up: {wanted} node(s), cluster {settings.CLUSTER_NAME}")


def check_suite_recognised() -> None:
    os_out = cluster.diagnose("os")
    storage_out = cluster.diagnose("storage")
    for name, out in (("snf-image", os_out), ("archipelago", storage_out)):
        valid = [
            line
            for line in out.splitlines()
            if name in line and "valid" in line and "invalid" not in line
        ]
        if not valid:
            raise LabError(f"Ganeti does not list {name} as valid:\n{out}")


def down() -> None:
    if os.geteuid() != 0:
        raise SystemExit("lab: error: run the lab as root")
    with lab_lock(), step("tear down the lab"):
        teardown()
    say("lab is down: no namespaces, loop devices or lab processes left")


def status() -> int:
    state = health.assess()
    if state.absent:
        say("lab is down")
        return 3
    for name, ok in state.checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    if state.healthy:
        say(f"lab is up with {state.nodes} node(s)")
        print(on_master(["gnt-instance", "list"], check=False).stdout, end="")
        return 0
    for leftover in state.leftovers:
        say(f"     present: {leftover}")
    say("lab is half-dead: `./lab up` rebuilds it")
    return 1


def exec_on(node_index: int, argv: list[str]) -> None:
    node = settings.NODES.get(node_index)
    if node is None:
        raise SystemExit(f"lab: error: no node {node_index} (nodes: 1, 2)")
    if not net.netns_exists(node.netns):
        raise SystemExit(f"lab: error: {node.name} is not up (`./lab up --nodes {node_index}`)")
    argv = argv or ["/bin/bash", "-i"]
    wrapped = in_node(node, argv)
    os.execvp(wrapped[0], wrapped)


def _ensure_demo_instance() -> str:
    """Create (or start) the demo instance; returns the event stream its jobs produced."""
    name = settings.DEMO_INSTANCE
    existing = {row["name"]: row for row in cluster.instances()}
    if name in existing and existing[name]["status"] == "running":
        return ""
    # Watch the stream the cloud layer would see while the instance is created.
    tail = subprocess.Popen(
        in_node(
            settings.MASTER, ["snf-events", "tail", "--url", settings.AMQP_URL, "--idle-exit", "6"]
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.0)  # its queue is bound before the first job starts
        if name not in existing:
            cluster.gnt(
                "gnt-instance", "add", "-t", "ext",
                "--disk", f"0:size=64M,provider=archipelago,origin={settings.DEMO_IMAGE}",
                "-o", "snf-image+default", "-O", f"img_id=null,auth_keys={demo_key()}",
                "--os-parameters-secret", f"img_passwd={demo_password()}",
                "-H", "kvm", "-B", f"memory={settings.GUEST_MEMORY_MB}",
                "--net", f"0:network={settings.NETWORK.name},ip=pool",
                "--tags", "synnefo:network:0:protected",
                "--no-name-check", "--no-ip-check", "-n", settings.MASTER.name,
                name, timeout=600,
            )  # fmt: skip
        else:
            cluster.gnt("gnt-instance", "startup", name, timeout=300)
        out, _ = tail.communicate(timeout=60)
    finally:
        if tail.poll() is None:
            tail.kill()
            tail.wait()
    return "".join(line for line in out.splitlines(keepends=True) if name in line)


def _demo_lease() -> str:
    from labkit.handle import Lab

    name = settings.DEMO_INSTANCE
    ip = cluster.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.ip/0", name).stdout.strip()
    out = Lab(nodes=1).wait_console(name, "ip -4 -o addr show dev eth0", f"inet {ip}/", timeout=180)
    line = next(line for line in out.splitlines() if f"inet {ip}/" in line)
    address = line.split("inet ", 1)[1].split()[0]
    return f"eth0 has {address}, leased by nfdhcpd from the binding snf-network wrote"


DEMO_KEY_FILE = settings.STATE_DIR / "demo-key"


def demo_key() -> str:
    """The public half of an ssh key the lab keeps for the demo VM's root."""
    if not DEMO_KEY_FILE.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lab-demo", "-f", DEMO_KEY_FILE])
    return Path(f"{DEMO_KEY_FILE}.pub").read_text().strip()


def demo_password() -> str:
    return stored_secret(settings.STATE_DIR / "demo-password")


def _demo_disk() -> list[str]:
    """What the guest finds on its disk: the image's file and what snf-image wrote."""
    from labkit.handle import Lab

    command = (
        "mkdir -p /mnt; mount -o ro /dev/vda1 /mnt 2>/dev/null; cat /mnt/hello.txt; "
        "echo hostname: $(cat /mnt/etc/hostname); "
        "echo root: $(cut -d: -f1-2 /mnt/etc/shadow | cut -c1-16)...; "
        "echo key: $(cut -c1-40 /mnt/root/.ssh/authorized_keys)..."
    )
    out = Lab(nodes=1).wait_console(settings.DEMO_INSTANCE, command, "key: ssh-", timeout=180)
    wanted = ("zero-copy clone", "hostname:", "root:", "key:")
    return [
        line.strip()
        for line in out.splitlines()
        if line.strip().startswith(wanted) or "zero-copy" in line
    ]


def demo(wanted_nodes: int | None) -> None:
    up(wanted_nodes)
    with step(f"image {settings.DEMO_IMAGE} in the archipelago store"):
        images.import_demo_image()
    with step(
        f"demo instance {settings.DEMO_INSTANCE} (KVM under TCG, disk cloned from the image)"
    ):
        stream = _ensure_demo_instance()
    with step(f"{settings.DEMO_INSTANCE} gets its address from nfdhcpd (DHCP over NFQUEUE)"):
        lease = _demo_lease()
    with step(f"{settings.DEMO_INSTANCE} reads its disk"):
        disk = _demo_disk()
    if stream:
        print("\nWhat the cloud layer received over AMQP meanwhile (snf-events tail):")
        print(stream, end="")
    print(f"\nInside the guest (serial console): {lease}")
    print("  its disk (/dev/vda1), personalized by snf-image in the helper VM:")
    for line in disk:
        print(f"    {line}")
    print(DEMO_SUMMARY.format(inst=settings.DEMO_INSTANCE), end="")
    print(
        on_master(
            ["gnt-instance", "list", "-o", "name,os,pnode,status,disk_template,nic.ips"]
        ).stdout,
        end="",
    )


DEMO_SUMMARY = """
What was done:
  - a Ganeti 3.0 cluster (cluster.ganeti.test) in network namespace `gnt`, hypervisors
    fake and kvm (qemu under TCG), disk templates diskless, file, sharedfile, ext;
  - network net1 (198.51.100.0/24, 2001:db8:100::/64, tag nfdhcpd) on bridge br0;
  - RabbitMQ on the namespace's loopback; a RAPI user for tests;
  - the suite's packages built from this tree and installed with apt;
  - the suite's daemons started from their systemd units on every node
    (snf-ganeti-eventd, nfdhcpd);
  - an archipelago store on an XFS (reflink) file system at /srv/archipelago, shared by
    the nodes, and image lab-demo imported into it (`archipelago image list`);
  - instance {inst}: snf-image OS on an archipelago disk cloned from lab-demo (no data
    copied: `archipelago df` shows what is shared), personalized in snf-image's helper
    VM (host name, root password given as a secret OS parameter, the lab's demo ssh
    key, fresh host keys, network); its NIC set up
    by snf-network (anti-spoofing, firewall profile `protected` from the instance tag
    synnefo:network:0:protected, a binding for nfdhcpd).

Look around:
  ./lab status
  ./lab exec gnt-instance list
  ./lab exec gnt-os diagnose
  ./lab exec gnt-storage diagnose
  archipelago image list; archipelago volume list; archipelago df
  ./lab exec -- gnt-instance info {inst}
  ./lab exec -- socat - UNIX-CONNECT:/run/ganeti/kvm-hypervisor/ctrl/{inst}.serial
  ./lab exec -- snf-events tail --url amqp://guest:guest@127.0.0.1:5672//
  ./lab exec -- iptables -S; ./lab exec -- nft list ruleset; ls /var/lib/nfdhcpd
  ./lab down

"""


def test(pytest_args: list[str]) -> int:
    up(2)
    with step("lint (ruff)"):
        ruff = host.ensure_lint_tool()
    for check in (["check", "."], ["format", "--check", "."]):
        lint = subprocess.run([str(ruff), *check], cwd=settings.REPO_DIR)
        if lint.returncode != 0:
            say(f"ruff {check[0]} found problems (above)")
            return lint.returncode
    say("running the test suite (unit + integration against the lab)")
    env = {**os.environ, "GANETI_EXT_LAB_UP": "1"}
    proc = subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "-ra", *pytest_args],
        cwd=settings.REPO_DIR,
        env=env,
    )
    return proc.returncode


__all__ = ["demo", "down", "exec_on", "status", "test", "up"]
