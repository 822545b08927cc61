"""snf-network's NIC script against real traffic: client namespaces play the VMs.

Each client's veth end in the node namespace is named like a tap; the test runs the NIC
script (this tree's, with the system interpreter) for it with a kvm-ifup environment,
then sends real and forged traffic, counting what arrives with an nft counter inside
the receiving namespace.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import time
from pathlib import Path

import pytest

from labkit import settings
from labkit.clients import Client
from labkit.sh import in_node, run

REPO = Path(__file__).resolve().parents[2]
NET = settings.NETWORK
SCRIPT = (
    "import sys; sys.path.insert(0, sys.argv[1]); sys.argv[0] = sys.argv[2];"
    " from ganeti_ext.network.cli import main; main(sys.argv[2])"
)
_seq = iter(range(200, 250))


def eui64(mac: str, subnet6: str = NET.subnet6) -> str:
    """The EUI-64 address of `mac` in `subnet6`, computed here rather than by the code
    under test."""
    octets = [int(part, 16) for part in mac.split(":")]
    octets[0] ^= 2
    iid = bytes([*octets[:3], 0xFF, 0xFE, *octets[3:]])
    net = ipaddress.IPv6Network(subnet6)
    return str(ipaddress.IPv6Address(int(net.network_address) | int.from_bytes(iid)))


class Vm:
    """A client namespace with the addresses Ganeti would give it, and its NIC env."""

    def __init__(self, client: Client, index: int) -> None:
        self.client = client
        self.mac = client.mac
        self.ip = f"198.51.100.{index}"
        self.ip6 = eui64(self.mac)
        self.tags = ""
        self.network_tags = "nfdhcpd"
        self.mac_prefix = NET.mac_prefix
        client.ip("addr", "add", f"{self.ip}/24", "dev", "eth0")
        client.ip("-6", "addr", "add", f"{self.ip6}/64", "dev", "eth0", "nodad")

    def env(self) -> dict[str, str]:
        return {
            "INTERFACE": self.client.tap,
            "INSTANCE": f"snf-vm{self.ip.rsplit('.', 1)[1]}",
            "MAC": self.mac,
            "IP": self.ip,
            "MODE": "bridged",
            "LINK": settings.BRIDGE,
            "INTERFACE_INDEX": "0",
            "NETWORK_NAME": NET.name,
            "NETWORK_SUBNET": NET.subnet,
            "NETWORK_GATEWAY": NET.gateway,
            "NETWORK_SUBNET6": NET.subnet6,
            "NETWORK_GATEWAY6": NET.gateway6,
            "NETWORK_MAC_PREFIX": self.mac_prefix,
            "NETWORK_TAGS": self.network_tags,
            "TAGS": self.tags,
        }

    def nic(self, action: str) -> subprocess.CompletedProcess[str]:
        env = [f"{key}={value}" for key, value in self.env().items()]
        argv = in_node(
            settings.MASTER, ["env", *env, "/usr/bin/python3", "-c", SCRIPT, str(REPO), action]
        )
        return run(argv)

    def up(self, profile: str | None = None) -> None:
        self.tags = f"synnefo:network:0:{profile}" if profile else ""
        self.nic("kvm-vif-bridge")

    def down(self) -> None:
        self.nic("down")

    def sh(self, argv, **kwargs):
        return self.client.run(argv, **kwargs)


def new_vm(mac_prefix: str = "aa:00:01") -> Vm:
    index = next(_seq)
    client = Client(mac=f"{mac_prefix}:77:{os.getpid() % 256:02x}:{index:02x}").create()
    try:
        return Vm(client, index)
    except Exception:
        client.delete()
        raise


@pytest.fixture
def vms(lab):
    made: list[Vm] = []

    def make(mac_prefix: str = "aa:00:01") -> Vm:
        vm = new_vm(mac_prefix)
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.down()
        vm.client.delete()


def node_sh(command: str) -> str:
    return run(in_node(settings.MASTER, ["sh", "-c", command])).stdout


def snapshot(tap: str) -> str:
    """Everything of `tap` in the node's rules, routes, proxies and state."""
    return node_sh(
        f"nft list ruleset | grep -E '_{tap}\\b|\"{tap}\"'; ip neigh show proxy | grep -w {tap};"
        f" ls /var/lib/nfdhcpd/{tap} /var/lib/snf-network/{tap}.json 2>/dev/null; true"
    )


def profiles_of(tap: str) -> dict[str, list[str]]:
    """The profile sets `tap` is a member of, per nft table family."""
    found: dict[str, list[str]] = {}
    for family in ("inet", "bridge"):
        found[family] = [
            profile
            for profile in ("protected", "limited")
            if f'"{tap}"' in node_sh(f"nft list set {family} snf_network fw_{profile}")
        ]
    return found


CONTROL_PORT = 9979  # frames that must get through, sent after those that must not


class Counter:
    """An nft counter in a VM's namespace: frames arriving on its eth0 matching `match`,
    and beside it a control counter of UDP to CONTROL_PORT (see `blocked`)."""

    def __init__(self, vm: Vm, match: str) -> None:
        self.vm = vm
        vm.sh(["nft", "add", "table", "netdev", "count"])
        vm.sh(
            ["nft", "add chain netdev count c { type filter hook ingress device eth0 priority 0; }"]
        )
        vm.sh(["nft", "flush", "chain", "netdev", "count", "c"])
        vm.sh(["nft", f"add rule netdev count c {match} counter"])
        vm.sh(["nft", f"add rule netdev count c udp dport {CONTROL_PORT} counter"])

    def _counts(self) -> list[int]:
        out = self.vm.sh(["nft", "list", "chain", "netdev", "count", "c"]).stdout
        return [int(part.split()[0]) for part in out.split("counter packets ")[1:]]

    @property
    def packets(self) -> int:
        return self._counts()[0]

    def reaches(self, packets: int, timeout: float = 10.0) -> bool:
        """Whether the counter gets to `packets` within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.packets < packets:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def blocked(self, sender: Vm, control_frame: str, timeout: float = 10.0) -> bool:
        """After the frames under test: send `control_frame` (UDP to CONTROL_PORT, which
        must arrive), wait for it, and only then say whether nothing under test came."""
        scapy_send(sender, control_frame, count=1)
        deadline = time.monotonic() + timeout
        while self._counts()[1] < 1:
            assert time.monotonic() < deadline, "the control frame never arrived"
            time.sleep(0.05)
        return self.packets == 0


def scapy_send(vm: Vm, frame: str, count: int = 3) -> None:
    code = f"from scapy.all import *; sendp({frame}, iface='eth0', count={count}, verbose=0)"
    vm.sh(["/usr/bin/python3", "-c", code])


def wait_listening(
    server: Vm, port: int, v6: bool, timeout: float = 10.0, *, udp: bool = False
) -> None:
    """Until the server's socat listens (its start-up is slow on a loaded machine)."""
    deadline = time.monotonic() + timeout
    family = "-6" if v6 else "-4"
    kind = "-Hlun" if udp else "-Hltn"
    while time.monotonic() < deadline:
        out = server.sh(["ss", kind, family, f"sport = :{port}"], check=False).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port} in the server namespace")


def udp_answered(client: Vm, address: str, port: int, tries: int = 3) -> bool:
    """Whether a query to a forking UDP echo server gets its answer.

    Asked again after a silent try, as any UDP client would: a datagram (or the
    server's fork) can be late on a loaded machine, and one lost answer is not a
    firewall verdict.
    """
    for _ in range(tries):
        reply = client.sh(
            ["socat", "-T3", "-t3", "STDIO", f"UDP4:{address}:{port}"],
            input="query\n",
            check=False,
        )
        if "answer" in reply.stdout:
            return True
    return False


def tcp_open(client: Vm, server: Vm, port: int, v6: bool = False) -> bool:
    listener = server.client.popen(
        ["socat", f"TCP{'6' if v6 else '4'}-LISTEN:{port},reuseaddr", "EXEC:echo hello"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(server, port, v6)
        target = f"[{server.ip6}]" if v6 else server.ip
        result = client.sh(
            # -u: only read the server's answer; a bidirectional STDIO would give up
            # 0.5 s after its own stdin's EOF, before a slow server's "hello".
            ["socat", "-u", "-T2", f"TCP:{target}:{port},connect-timeout=2", "STDOUT"],
            check=False,
        )
        return "hello" in result.stdout
    finally:
        listener.kill()
        listener.wait()


def ping(vm: Vm, address: str) -> bool:
    return vm.sh(["fping", "-q", "-r", "2", "-t", "500", address], check=False).returncode == 0


def test_bridged_peers_reach_each_other_with_their_own_addresses(vms):
    a, b = vms(), vms()
    a.up()
    b.up("protected")
    assert ping(a, b.ip) and ping(a, b.ip6)
    assert ping(b, a.ip) and ping(b, a.ip6)
    assert ping(a, "198.51.100.11")  # the node's own address on the bridge


def test_forged_frames_never_arrive(vms):
    a, b = vms(), vms()
    a.up()
    b.up()
    base = f"Ether(src='{a.mac}', dst='{b.mac}')"
    cases = {
        "source MAC": (
            f"Ether(src='aa:00:01:00:00:99', dst='{b.mac}')"
            f"/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport=9999)",
            "udp dport 9999",
        ),
        "source IPv4": (
            f"{base}/IP(src='198.51.100.99', dst='{b.ip}')/UDP(dport=9998)",
            "udp dport 9998",
        ),
        "source IPv6": (
            f"{base}/IPv6(src='2001:db8:100::99', dst='{b.ip6}')/UDP(dport=9997)",
            "udp dport 9997",
        ),
        "ARP for another IP": (
            f"Ether(src='{a.mac}', dst='ff:ff:ff:ff:ff:ff')"
            f"/ARP(op=2, hwsrc='{a.mac}', psrc='{b.ip}', pdst='198.51.100.11')",
            f"arp saddr ip {b.ip}",
        ),
        "unsolicited NA": (
            f"Ether(src='{a.mac}', dst='33:33:00:00:00:01')/IPv6(src='{a.ip6}', dst='ff02::1')"
            f"/ICMPv6ND_NA(tgt='{b.ip6}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr='{a.mac}')",
            "icmpv6 type nd-neighbor-advert",
        ),
        "rogue RA": (
            f"Ether(src='{a.mac}', dst='33:33:00:00:00:01')/IPv6(src='fe80::1', dst='ff02::1')"
            "/ICMPv6ND_RA()/ICMPv6NDOptPrefixInfo(prefix='2001:db8:666::', prefixlen=64)",
            "icmpv6 type nd-router-advert",
        ),
        "rogue DHCP offer": (
            f"Ether(src='{a.mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='{a.ip}', dst='255.255.255.255')"
            "/UDP(sport=67, dport=68)/BOOTP(op=2, yiaddr='198.51.100.66')"
            "/DHCP(options=[('message-type', 'offer'), 'end'])",
            "udp sport 67",
        ),
        "RARP to one host": (
            f"Ether(src='{a.mac}', dst='{b.mac}', type=0x8035)"
            f"/ARP(op=3, hwsrc='{a.mac}', hwdst='{a.mac}')",
            "meta protocol 0x8035",
        ),
    }
    # The same kind of frame with honest addresses does arrive, so the counters work.
    honest = Counter(b, "udp dport 9996")
    scapy_send(a, f"{base}/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport=9996)")
    assert honest.reaches(3)
    # qemu's announcement after a live migration: broadcast RARP from the VM's own MAC.
    announce = Counter(b, "meta protocol 0x8035")
    scapy_send(
        a,
        f"Ether(src='{a.mac}', dst='ff:ff:ff:ff:ff:ff', type=0x8035)"
        f"/ARP(op=3, hwsrc='{a.mac}', hwdst='{a.mac}')",
    )
    assert announce.reaches(3)
    control = f"{base}/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport={CONTROL_PORT})"
    for name, (frame, match) in cases.items():
        counter = Counter(b, match)
        scapy_send(a, frame)
        assert counter.blocked(a, control), name


@pytest.mark.parametrize(
    "profile, open_ports",
    [
        ("protected", ()),
        ("limited", (22, 3389)),
        ("unprotected", (22, 3389, 80)),
    ],
)
def test_firewall_profiles(vms, profile, open_ports):
    a, b = vms(), vms()
    a.up()
    b.up(profile)
    for port in (22, 3389, 80):
        assert tcp_open(a, b, port) == (port in open_ports), (profile, port)
        assert tcp_open(a, b, port, v6=True) == (port in open_ports), (profile, port, "v6")
    assert ping(a, b.ip) and ping(a, b.ip6)
    # DNS replies to the VM's own query pass; an unsolicited "reply" does not.
    server = a.client.popen(
        ["socat", "UDP4-RECVFROM:53,reuseaddr,fork", "EXEC:echo answer"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(a, 53, v6=False, udp=True)
        assert udp_answered(b, a.ip, 53)
    finally:
        server.kill()
        server.wait()
    if profile != "unprotected":
        counter = Counter(b, "udp sport 53 udp dport 5353")
        scapy_send(
            a,
            f"Ether(src='{a.mac}', dst='{b.mac}')"
            f"/IP(src='{a.ip}', dst='{b.ip}')/UDP(sport=53, dport=5353)",
        )
        # the frame reaches eth0's ingress (counted) only if the firewall let it through
        assert counter.packets == 0


def test_switching_profiles_leaves_no_old_rules(vms):
    a, b = vms(), vms()
    a.up()
    b.up("limited")
    assert tcp_open(a, b, 22)
    b.up("protected")
    assert not tcp_open(a, b, 22)
    assert profiles_of(b.client.tap) == {"inet": ["protected"], "bridge": ["protected"]}
    b.up()
    assert tcp_open(a, b, 80)
    assert profiles_of(b.client.tap) == {"inet": [], "bridge": []}


def test_up_twice_equals_up_once_and_down_leaves_nothing(vms):
    a = vms()
    before = snapshot(a.client.tap)
    assert before.strip() == ""
    a.up("limited")
    once = snapshot(a.client.tap)
    a.up("limited")
    assert snapshot(a.client.tap) == once
    assert profiles_of(a.client.tap) == {"inet": ["limited"], "bridge": ["limited"]}
    a.down()
    assert snapshot(a.client.tap).strip() == ""
    a.down()  # down twice is harmless


def test_private_filtered_vm_hears_only_its_networks_macs(vms):
    """Two private networks share the bridge, told apart by MAC prefix (ff:ff:f0 mask):
    aa:00:01 and aa:00:21. A VM receives frames only from MACs of its own prefix."""
    a, b, other = vms(), vms(), vms("aa:00:21")
    for vm in (a, b, other):
        vm.network_tags = "private-filtered"
        vm.mac_prefix = vm.mac[:8]
        vm.up()
    tap = a.client.tap
    listed = node_sh(
        f"nft list map bridge snf_network to_vm; nft list chain bridge snf_network to_{tap}"
    )
    assert f'"{tap}" : jump to_{tap}' in listed
    assert "ether saddr & ff:ff:f0:00:00:00 != aa:00:00:00:00:00 drop" in listed
    cases = [
        ("same prefix", b, a.mac, a.ip, 3),
        ("other prefix", other, a.mac, a.ip, 0),
        ("other prefix, broadcast", other, "ff:ff:ff:ff:ff:ff", "255.255.255.255", 0),
    ]
    # The control comes from b, whose prefix a hears: once it is in, any frame sent
    # before it would be too.
    control = f"Ether(src='{b.mac}', dst='{a.mac}')/IP(src='{b.ip}', dst='{a.ip}')"
    control += f"/UDP(dport={CONTROL_PORT})"
    for name, sender, mac, ip, expected in cases:
        counter = Counter(a, "udp dport 9990")  # one counter at a time: it flushes
        frame = f"Ether(src='{sender.mac}', dst='{mac}')/IP(src='{sender.ip}', dst='{ip}')"
        scapy_send(sender, f"{frame}/UDP(dport=9990)")
        if expected:
            assert counter.reaches(expected), name
        else:
            assert counter.blocked(b, control), name
    assert ping(a, b.ip) and not ping(a, other.ip)
    # the filter is per receiver: `other` hears its own prefix only, so not a either
    assert not ping(other, a.ip)
    a.down()
    after = node_sh("nft list ruleset")
    assert f'"{tap}"' not in after and f"to_{tap}" not in after
    assert f"to_{b.client.tap}" in after  # b keeps its own filter


OUTSIDE, OUTSIDE_GATEWAY = "198.51.100.250", "198.51.100.249"


def peer_seen(client: Client, server: Client, address: str, port: int = 7777) -> str:
    """The source address `server` sees for a TCP connection from `client`."""
    listener = server.popen(
        ["socat", f"TCP4-LISTEN:{port},reuseaddr", "SYSTEM:echo $SOCAT_PEERADDR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not server.run(["ss", "-Hltn4", f"sport = :{port}"], check=False).stdout.strip():
            assert time.monotonic() < deadline, "the listener never came up"
            time.sleep(0.05)
        result = client.run(
            ["socat", "-u", "-T2", f"TCP:{address}:{port},connect-timeout=2", "STDOUT"],
            check=False,
        )
        return result.stdout.strip()
    finally:
        listener.kill()
        listener.wait()


@pytest.fixture
def outside(lab):
    """A host beyond the node, on a link of its own (not the bridge): the node routes
    between it and the VMs, as a gateway to the rest of the world would."""
    host = Client(bridged=False).create()
    keys = [f"net.ipv4.conf.{dev}.forwarding" for dev in (settings.BRIDGE, host.tap)]
    before = node_sh(f"sysctl -n {keys[0]}").strip()
    try:
        host.ip("addr", "add", f"{OUTSIDE}/30", "dev", "eth0")
        host.ip("route", "add", "default", "via", OUTSIDE_GATEWAY)
        host.node_ip("addr", "add", f"{OUTSIDE_GATEWAY}/30", "dev", host.tap)
        node_sh(f"sysctl -qw {keys[0]}=1 {keys[1]}=1")
        yield host
    finally:
        node_sh(f"sysctl -qw {keys[0]}={before}")
        host.delete()


def test_masq_network_leaves_the_node_with_the_node_address(vms, outside):
    """`masq`: a VM's IPv4 traffic leaving by another interface than its bridge takes
    the node's address there; on the bridge it keeps the VM's own; down ends it."""
    a, b = vms(), vms()
    a.network_tags = "nfdhcpd masq"
    a.up()
    b.up()
    for vm in (a, b):
        vm.client.ip("route", "add", f"{OUTSIDE}/32", "via", settings.MASTER.ip)
    assert peer_seen(a.client, outside, OUTSIDE) == OUTSIDE_GATEWAY
    assert peer_seen(b.client, outside, OUTSIDE) == b.ip  # not on a masq network
    assert peer_seen(a.client, b.client, b.ip) == a.ip  # its peers on the bridge
    a.down()
    assert peer_seen(a.client, outside, OUTSIDE) == a.ip
