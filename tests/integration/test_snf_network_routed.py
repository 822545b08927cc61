"""snf-network's routed mode against real traffic.

The node namespace gets what an admin sets up for a routed network: a routing table
named in /etc/iproute2/rt_tables.d (the network's LINK) holding the uplink's subnet and
default route, `ip rule iif <uplink> lookup <table>`, forwarding. The uplink is a veth to
a namespace playing the upstream router that owns the network's gateway addresses; the
VMs are client namespaces on un-bridged tap-named veths. The NIC script adds the rest:
host routes, proxy ARP/NDP, the constant tap MAC, the rules, gratuitous ARP / NA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_snf_network import (
    CONTROL_PORT,
    REPO,
    SCRIPT,
    Counter,
    eui64,
    node_sh,
    ping,
    scapy_send,
    tcp_open,
)

from labkit import settings
from labkit.clients import Client
from labkit.sh import in_node, run

SUBNET = "198.51.100.160/28"
GATEWAY = "198.51.100.161"
SUBNET6 = "2001:db8:300::/64"
GATEWAY6 = "2001:db8:300::1"
TAP_MAC = "cc:47:52:4e:45:54"  # TAP_CONSTANT_MAC's default
_host = iter(range(162, 175))


@dataclass
class RoutedNet:
    table: str
    uplink: Client
    router: Client

    def sh(self, argv, **kwargs):  # the router side, for Counter
        return self.router.run(argv, **kwargs)


class RoutedVm:
    def __init__(self, net: RoutedNet, index: int) -> None:
        self.net = net
        self.mac = f"aa:00:01:78:{os.getpid() % 256:02x}:{index:02x}"
        # The node end stays down until the NIC script brings it up, as under Ganeti.
        self.client = Client(mac=self.mac, bridged=False, node_up=False).create()
        self.ip = f"198.51.100.{index}"
        self.ip6 = eui64(self.mac, SUBNET6)
        self.tags = ""
        self.network_tags = "nfdhcpd ip-less-routed"
        c = self.client
        try:
            c.ip("addr", "add", f"{self.ip}/28", "dev", "eth0")
            c.ip("route", "add", "default", "via", GATEWAY)
            # noprefixroute: peers' IPv6 go through the gateway (the host), as in Synnefo
            c.ip("-6", "addr", "add", f"{self.ip6}/64", "dev", "eth0", "nodad", "noprefixroute")
            c.ip("-6", "route", "add", f"{GATEWAY6}/128", "dev", "eth0")
            c.ip("-6", "route", "add", "default", "via", GATEWAY6, "dev", "eth0")
        except Exception:
            c.delete()
            raise

    def env(self) -> dict[str, str]:
        return {
            "INTERFACE": self.client.tap,
            "INSTANCE": f"snf-rvm{self.ip.rsplit('.', 1)[1]}",
            "MAC": self.mac,
            "IP": self.ip,
            "MODE": "routed",
            "LINK": self.net.table,
            "INTERFACE_INDEX": "0",
            "NETWORK_NAME": "routed1",
            "NETWORK_SUBNET": SUBNET,
            "NETWORK_GATEWAY": GATEWAY,
            "NETWORK_SUBNET6": SUBNET6,
            "NETWORK_GATEWAY6": GATEWAY6,
            "NETWORK_MAC_PREFIX": "aa:00:01",
            "NETWORK_TAGS": self.network_tags,
            "TAGS": self.tags,
        }

    def nic(self, action: str) -> None:
        env = [f"{key}={value}" for key, value in self.env().items()]
        argv = ["env", *env, "/usr/bin/python3", "-c", SCRIPT, str(REPO), action]
        run(in_node(settings.MASTER, argv))

    def up(self, profile: str | None = None) -> None:
        self.tags = f"synnefo:network:0:{profile}" if profile else ""
        self.nic("kvm-vif-bridge")

    def down(self) -> None:
        self.nic("down")

    def sh(self, argv, **kwargs):
        return self.client.run(argv, **kwargs)

    def gateway_mac(self, address: str) -> str:
        out = self.client.ip("neigh", "show", address, "dev", "eth0")
        words = out.split()
        return words[words.index("lladdr") + 1] if "lladdr" in words else ""


@pytest.fixture
def routed_net(lab):
    number = os.getpid() % 1000
    table = f"snf_rt{number}"
    table_file = Path(f"/etc/iproute2/rt_tables.d/ganeti-ext-test-{number}.conf")
    # Debian 13's iproute2 keeps its own files in /usr/share/iproute2: /etc/iproute2 is
    # the admin's, made when needed (and read by both releases' ip).
    table_file.parent.mkdir(parents=True, exist_ok=True)
    table_file.write_text(f"{4000 + number} {table}\n")
    uplink = Client(mac=f"02:00:00:78:{number % 256:02x}:01", bridged=False, tap=f"snfup{number}")
    uplink.create()
    up = uplink.tap
    forwarding6 = node_sh("cat /proc/sys/net/ipv6/conf/all/forwarding").strip()
    try:
        yield from _routed_net(table, uplink)
    finally:
        node_sh(
            f"ip rule del iif {up} table {table}; ip -6 rule del iif {up} table {table};"
            f" ip route flush table {table}; ip -6 route flush table {table};"
            f" echo {forwarding6 or 0} > /proc/sys/net/ipv6/conf/all/forwarding; true"
        )
        uplink.delete()
        table_file.unlink(missing_ok=True)


def _routed_net(table: str, uplink: Client):
    up = uplink.tap
    node_sh(
        f"ip route add {SUBNET} dev {up} table {table}"
        f" && ip route add default via {GATEWAY} dev {up} table {table}"
        f" && ip -6 route add {SUBNET6} dev {up} table {table}"
        f" && ip -6 route add default via {GATEWAY6} dev {up} table {table}"
        f" && ip rule add iif {up} table {table} && ip -6 rule add iif {up} table {table}"
        f" && echo 1 > /proc/sys/net/ipv4/conf/{up}/forwarding"
        " && echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"
    )
    uplink.ip("addr", "add", f"{GATEWAY}/28", "dev", "eth0")
    uplink.ip("-6", "addr", "add", f"{GATEWAY6}/64", "dev", "eth0", "nodad")
    yield RoutedNet(table=table, uplink=uplink, router=uplink)


@pytest.fixture
def rvms(routed_net):
    made: list[RoutedVm] = []

    def make() -> RoutedVm:
        vm = RoutedVm(routed_net, next(_host))
        made.append(vm)
        return vm

    yield make
    for vm in made:
        vm.down()
        vm.client.delete()


def snapshot(vm: RoutedVm) -> str:
    """Everything of the VM's NIC on the node: rules, routes, proxies, chains, files."""
    tap = vm.client.tap
    table = vm.net.table
    return node_sh(
        f"nft list ruleset | grep -E '_{tap}\\b|\"{tap}\"';"
        f" ip rule | grep -w {tap}; ip -6 rule | grep -w {tap};"
        f" ip route show table {table} | grep -w -e {tap} -e {vm.ip};"
        f" ip -6 route show table {table} | grep -w -e {tap} -e {vm.ip6};"
        f" ip neigh show proxy | grep -w -e {tap} -e {vm.ip} -e {vm.ip6};"
        f" ls /var/lib/nfdhcpd/{tap} /var/lib/snf-network/{tap}.json 2>/dev/null; true"
    )


def test_routed_vm_reaches_gateway_and_peer_v4_v6(rvms):
    a, b = rvms(), rvms()
    a.up()
    b.up("protected")
    assert ping(a, GATEWAY) and ping(a, GATEWAY6)
    assert a.gateway_mac(GATEWAY) == TAP_MAC  # the VM's gateway is the host's tap
    assert a.gateway_mac(GATEWAY6) == TAP_MAC
    assert ping(a, b.ip) and ping(a, b.ip6)
    assert ping(b, a.ip) and ping(b, a.ip6)
    # the upstream router reaches the VM through the host's proxy ARP/NDP on the uplink
    assert ping(a.net, a.ip) and ping(a.net, a.ip6)


def test_routed_up_announces_the_vm_upstream(routed_net, rvms):
    garp = Counter(routed_net, "arp operation request")
    na = Counter(routed_net, "icmpv6 type nd-neighbor-advert")
    vm = rvms()
    vm.up()
    assert garp.reaches(1) and na.reaches(1)


def test_routed_antispoofing_and_profile(rvms):
    a, b = rvms(), rvms()
    a.up()
    b.up("limited")
    assert tcp_open(a, b, 22) and tcp_open(a, b, 22, v6=True)
    assert not tcp_open(a, b, 80) and not tcp_open(a, b, 80, v6=True)
    b.up()  # unprotected now: the new profile applies, the old one is gone
    assert tcp_open(a, b, 80)
    assert f'"{b.client.tap}"' not in node_sh("nft list table inet snf_network")
    # frames reach b's eth0 only routed through the host (which rewrites the MAC)
    honest = Counter(b, "udp dport 9996")
    base = f"Ether(src='{a.mac}', dst='{TAP_MAC}')"
    scapy_send(a, f"{base}/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport=9996)")
    assert honest.reaches(3)
    forged = {
        "source MAC": (
            f"Ether(src='aa:00:01:00:00:99', dst='{TAP_MAC}')"
            f"/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport=9995)",
            "udp dport 9995",
        ),
        "source IPv4": (
            f"{base}/IP(src='198.51.100.170', dst='{b.ip}')/UDP(dport=9994)",
            "udp dport 9994",
        ),
        "source IPv6": (
            f"{base}/IPv6(src='2001:db8:300::99', dst='{b.ip6}')/UDP(dport=9993)",
            "udp dport 9993",
        ),
    }
    control = f"{base}/IP(src='{a.ip}', dst='{b.ip}')/UDP(dport={CONTROL_PORT})"
    for name, (frame, match) in forged.items():
        counter = Counter(b, match)
        scapy_send(a, frame)
        assert counter.blocked(a, control), name


def test_routed_up_twice_equals_once_and_down_leaves_nothing(rvms):
    vm = rvms()
    assert snapshot(vm).strip() == ""
    vm.up("protected")
    once = snapshot(vm)
    for expected in (f"{vm.ip} dev {vm.client.tap}", f"iif {vm.client.tap}", f"{vm.ip} dev snfup"):
        assert expected in once
    assert Path(f"/var/lib/nfdhcpd/{vm.client.tap}").read_text().count("MTU=") == 1
    # ip-less: the host has no address of its own in the network (link-local only)
    assert node_sh(f"ip -o addr show dev {vm.client.tap} scope global").strip() == ""
    vm.up("protected")
    assert snapshot(vm) == once
    vm.down()
    assert snapshot(vm).strip() == ""
    vm.down()


def test_routed_without_ip_less_routed_tag_only_brings_the_tap_up(rvms):
    """Upstream's routed NIC without the tag: the tap up with the constant MAC and the
    binding, but no host route, rule or proxy: routing is left to the site."""
    vm = rvms()
    vm.network_tags = "nfdhcpd"
    vm.up("protected")
    tap = vm.client.tap
    assert node_sh(f"cat /sys/class/net/{tap}/address").strip() == TAP_MAC
    got = snapshot(vm)
    assert f"from_{tap}" in got  # anti-spoofing
    assert f'"{tap}"' in node_sh("nft list set inet snf_network fw_protected")  # profile
    assert f"/var/lib/nfdhcpd/{tap}" in got
    for absent in (f"dev {tap}", f"iif {tap}", f"{vm.ip} dev snfup"):
        assert absent not in got, absent
    assert not ping(vm.net, vm.ip)  # nothing routes the VM
    vm.network_tags = "nfdhcpd ip-less-routed"  # tagging the network makes it routed
    vm.up("protected")
    assert ping(vm.net, vm.ip) and ping(vm, GATEWAY)
    vm.network_tags = "nfdhcpd"  # and untagging removes the routes again
    vm.up("protected")
    assert f"iif {tap}" not in snapshot(vm) and not ping(vm.net, vm.ip)
    vm.down()
    assert snapshot(vm).strip() == ""
