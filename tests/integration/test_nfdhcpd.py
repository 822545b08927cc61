"""nfdhcpd in the lab: real DHCP/IPv6 clients in namespaces behind tap-named veths on the
master's bridge, a fuzz run into its queues, and a KVM guest booted by Ganeti.

The daemon is the one the lab started from the package's systemd unit (settings
.LAB_SERVICES); its rules come from the unit's ExecStartPre (nfdhcpd-rules up).
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from instances import add_instance

from ganeti_ext.bindings import Binding, read_binding, remove_binding, write_binding
from ganeti_ext.inet import eui64_address
from labkit import services, settings, suiteconf
from labkit.clients import Client

STATE_DIR = Path("/var/lib/nfdhcpd")
CONF = Path("/etc/nfdhcpd/nfdhcpd.conf")
SUBNET = ipaddress.IPv4Network("198.51.100.0/24")
GATEWAY = ipaddress.IPv4Address("198.51.100.1")
SUBNET6 = ipaddress.IPv6Network("2001:db8:100::/64")
GATEWAY6 = ipaddress.IPv6Address("2001:db8:100::1")
DNS4, DNS6, DOMAIN = suiteconf.DNS4, suiteconf.DNS6, suiteconf.DOMAIN
UDHCPC_SCRIPT = """#!/bin/sh
echo "EVENT $1 ip=$ip mask=$mask router=$router dns=$dns mtu=$mtu domain=$domain \
hostname=$hostname serverid=$serverid"
"""
FUZZ = Path(__file__).with_name("nfdhcpd_fuzz.py")


@pytest.fixture(scope="module")
def nfdhcpd(lab, tmp_path_factory):
    """The master's nfdhcpd, running with the lab's DNS settings."""
    if services.unit_file("nfdhcpd") is None:
        pytest.fail("the nfdhcpd package is not installed in the lab")
    # The lab configures it (labkit/suiteconf.py) and starts it from its unit.
    assert CONF.read_text() == suiteconf.nfdhcpd_conf()
    pid = services.running("nfdhcpd", settings.MASTER)
    assert pid, "nfdhcpd runs in the lab"
    script = tmp_path_factory.mktemp("nfdhcpd") / "udhcpc-script"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    return {"pid": pid, "script": str(script)}


_ip_counter = iter(range(150, 199))


def _mac(n: int) -> str:
    return f"aa:00:01:fe:{os.getpid() % 256:02x}:{n:02x}"


def make_binding(tap: str, mac: str, **overrides) -> Binding:
    fields = dict(
        tap=tap,
        mac=mac,
        hostname=f"vm-{tap}",
        ip=SUBNET.network_address + next(_ip_counter),
        subnet=SUBNET,
        gateway=GATEWAY,
        subnet6=SUBNET6,
        gateway6=GATEWAY6,
        mtu=1400,
    )
    fields.update(overrides)
    return Binding(**fields)


NFDHCPD_LOG = Path("/var/log/nfdhcpd/nfdhcpd.log")


def log_size() -> int:
    return NFDHCPD_LOG.stat().st_size if NFDHCPD_LOG.exists() else 0


def await_log(text: str, since: int, timeout: float = 30) -> None:
    """Wait until nfdhcpd's log says `text` after byte `since` (it took a change in)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(NFDHCPD_LOG, "rb") as stream:
            stream.seek(since)
            if text.encode() in stream.read():
                return
        time.sleep(0.05)
    raise AssertionError(f"nfdhcpd did not log {text!r} within {timeout:.0f} s")


@pytest.fixture
def client():
    made: list[Client] = []

    def make(mac: str, binding_mac: str | None = None, **overrides):
        c = Client(mac=mac).create()
        made.append(c)
        binding = None
        if binding_mac is not None:
            binding = make_binding(c.tap, binding_mac, **overrides)
            since = log_size()
            write_binding(STATE_DIR, binding)
            await_log(f"binding {c.tap}: mac={binding.mac}", since)  # the daemon has it
        return c, binding

    yield make
    for c in made:
        remove_binding(STATE_DIR, c.tap)
        c.delete()


def udhcpc(c: Client, script: str, tries: int = 3) -> subprocess.CompletedProcess[str]:
    argv = ["busybox", "udhcpc", "-i", "eth0", "-q", "-n", "-f", "-t", str(tries), "-T", "1"]
    return c.run([*argv, "-s", script], check=False, timeout=30)


def lease(out: str) -> dict[str, str]:
    for line in out.splitlines():
        if line.startswith("EVENT bound"):
            return dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
    return {}


def survived(pid: int | None) -> bool:
    """Whether the daemon `pid` still runs, or was stopped cleanly (another `./lab up`
    restarts the lab's daemons) and a new one runs: anything but a crash."""
    now = services.running("nfdhcpd", settings.MASTER)
    if now is not None and now == pid:
        return True
    log = NFDHCPD_LOG.read_text(errors="replace")
    return now is not None and f"nfdhcpd[{pid}] INFO nfdhcpd: stopping" in log


def test_udhcpc_gets_exactly_its_binding(nfdhcpd, client):
    c, b = client(_mac(1), _mac(1))
    out = udhcpc(c, nfdhcpd["script"])
    got = lease(out.stdout)
    assert got, out.stdout + out.stderr
    assert got["ip"] == str(b.ip)
    assert got["mask"] == "24"
    assert got["router"] == str(GATEWAY)
    assert got["dns"] == DNS4
    assert got["domain"] == DOMAIN
    assert got["mtu"] == "1400"
    assert got["hostname"] == b.hostname
    assert got["serverid"] == str(GATEWAY)


def test_private_network_gets_no_router(nfdhcpd, client):
    c, b = client(_mac(2), _mac(2), private=True)
    got = lease(udhcpc(c, nfdhcpd["script"]).stdout)
    assert got["ip"] == str(b.ip) and got["router"] == ""


def test_no_binding_no_answer(nfdhcpd, client):
    c, _ = client(_mac(3))
    out = udhcpc(c, nfdhcpd["script"], tries=2)
    assert out.returncode != 0 and not lease(out.stdout)


def test_spoofed_chaddr_gets_no_answer_unless_macspoof(nfdhcpd, client):
    c, _ = client(_mac(4), _mac(5))  # the guest's MAC is not the bound one
    out = udhcpc(c, nfdhcpd["script"], tries=2)
    assert out.returncode != 0 and not lease(out.stdout)
    c2, b2 = client(_mac(6), _mac(7), macspoof=True)
    assert lease(udhcpc(c2, nfdhcpd["script"]).stdout)["ip"] == str(b2.ip)


def test_binding_removed_means_no_answer(nfdhcpd, client):
    c, _ = client(_mac(8), _mac(8))
    assert lease(udhcpc(c, nfdhcpd["script"]).stdout)
    since = log_size()
    remove_binding(STATE_DIR, c.tap)
    await_log(f"binding {c.tap} removed", since)
    assert not lease(udhcpc(c, nfdhcpd["script"], tries=2).stdout)


def test_slaac_router_and_neighbour_answers(nfdhcpd, client):
    """The kernel's own SLAAC (its RS, our RA) gives the EUI-64 address, route and MTU."""
    c, b = client(_mac(9), _mac(9))
    expected = str(eui64_address(SUBNET6, b.mac))
    deadline = time.monotonic() + 15
    routes = ""
    while time.monotonic() < deadline:
        routes = c.ip("-6", "route")
        if expected in c.ip("-6", "addr", "show", "eth0") and "default via fe80::" in routes:
            break
        c.run(["rdisc6", "-1", "-w", "500", "eth0"], check=False)  # solicit again
        time.sleep(0.5)
    assert expected in c.ip("-6", "addr", "show", "eth0")
    assert "default via fe80::" in routes and "mtu 1400" in routes, routes
    # rdisc6 decodes the whole RA, DNS options included. It must not solicit before
    # duplicate address detection is over: with a tentative link-local source its RS
    # fails ("Cannot assign requested address") and it prints nothing.
    wait_link_local(c)
    ra = c.run(["rdisc6", "-1", "-w", "2000", "eth0"], check=False).stdout
    assert f"Prefix                   : {SUBNET6}" in ra, ra
    assert f"Recursive DNS server     : {DNS6}" in ra, ra
    assert f"DNS search list          : {DOMAIN}" in ra, ra
    assert "MTU                      :         1400" in ra, ra
    na = c.run(["ndisc6", "-1", "-w", "1000", str(GATEWAY6), "eth0"], check=False).stdout
    assert "Target link-layer address" in na, na


def ra_count(c: Client) -> int:
    listed = c.run(["nft", "list", "chain", "netdev", "count", "ra"]).stdout
    return int(listed.split("packets ", 1)[1].split()[0])


def test_new_binding_gets_an_ra_unsolicited(nfdhcpd, client):
    """A guest whose binding appears after it stopped soliciting still gets its RA at
    once, not at the next periodic round (ra_period, 300 s in the lab)."""
    c, _ = client(_mac(11))
    c.run(["sysctl", "-qw", "net.ipv6.conf.eth0.router_solicitations=0"])  # no more RS
    c.run(["nft", "add", "table", "netdev", "count"])
    c.run(
        ["nft", "add chain netdev count ra"
         " { type filter hook ingress device eth0 priority 0; policy accept; }"]
    )  # fmt: skip
    c.run(["nft", "add rule netdev count ra icmpv6 type nd-router-advert counter"])
    assert ra_count(c) == 0
    write_binding(STATE_DIR, make_binding(c.tap, _mac(11)))
    deadline = time.monotonic() + 10
    while ra_count(c) == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ra_count(c) >= 1, "no RA after the binding appeared"


def wait_link_local(c: Client, timeout: float = 10) -> None:
    """Until duplicate address detection has finished on eth0's link-local address."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = c.ip("-6", "addr", "show", "eth0", "scope", "link")
        if "fe80::" in out and "tentative" not in out:
            return
        time.sleep(0.2)


def test_dhcpv6_stateful_and_stateless(nfdhcpd, client, tmp_path):
    c, b = client(_mac(10), _mac(10))
    wait_link_local(c)
    conf = tmp_path / "dhclient.conf"
    conf.write_text("")
    base = ["dhclient", "-6", "-1", "-cf", str(conf), "-sf", "/bin/true"]
    leases = tmp_path / "stateful.leases"
    out = c.run([*base, "-lf", str(leases), "-pf", str(tmp_path / "a.pid"), "eth0"], check=False)
    assert out.returncode == 0, out.stderr
    text = leases.read_text()
    assert f"iaaddr {eui64_address(SUBNET6, b.mac)}" in text
    assert DNS6.replace("::", ":0:") in text or "dhcp6.name-servers" in text
    stateless = tmp_path / "stateless.leases"
    out = c.run(
        [*base, "-S", "-lf", str(stateless), "-pf", str(tmp_path / "b.pid"), "eth0"],
        check=False,
    )
    assert out.returncode == 0, out.stderr
    c.run(["sh", "-c", "kill $(cat %s) 2>/dev/null; true" % (tmp_path / "a.pid")], check=False)


def test_fuzz_does_not_crash_or_mislead(nfdhcpd, client):
    """>= 100k malformed, truncated and random packets into all four queues."""
    c, b = client(_mac(11), _mac(11))
    pid = services.running("nfdhcpd", settings.MASTER)
    started = time.monotonic()
    out = c.run(
        [sys.executable, str(FUZZ), "eth0", b.mac, str(b.ip), "100000"], check=False, timeout=600
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stdout + out.stderr
    print(out.stdout, f"fuzz took {elapsed:.1f} s")
    assert survived(pid)
    # Still answers a valid client afterwards, with exactly its binding.
    assert lease(udhcpc(c, nfdhcpd["script"]).stdout)["ip"] == str(b.ip)


def _tap_of(instance: str, timeout: float = 60) -> str:
    nic_file = Path(f"/run/ganeti/kvm-hypervisor/nic/{instance}/0")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nic_file.exists() and nic_file.read_text().strip():
            return nic_file.read_text().strip()
        time.sleep(0.2)
    raise AssertionError(f"{nic_file} never appeared")


def test_kvm_guest_gets_its_lease_from_nfdhcpd(lab, nfdhcpd, instance_name):
    name = instance_name()
    add_instance(lab, name, hypervisor="kvm", template="diskless", osparams=(), extra=("--submit",))
    tap = _tap_of(name)
    row = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.mac/0,nic.ip/0", name)
    mac, ip = row.stdout.split()
    path = STATE_DIR / tap
    existing = read_binding(path) if path.exists() else None
    if existing is None or existing.mac != mac:  # the NIC script did not write it (yet)
        write_binding(
            STATE_DIR,
            Binding(
                tap=tap,
                mac=mac,
                hostname=name,
                ip=ipaddress.IPv4Address(ip),
                subnet=SUBNET,
                gateway=GATEWAY,
            ),
        )
    try:
        # The guest's init asks for a lease at boot (labkit/guest-root/init).
        out = lab.wait_console(name, "ip -4 -o addr show dev eth0", f"inet {ip}/24", timeout=180)
        assert f"inet {ip}/24" in out
    finally:
        if existing is None:
            remove_binding(STATE_DIR, tap)
