"""Routed NICs through nic.up/down with a scripted runner: what the `ip-less-routed`
network tag changes on the host (commands and sysctls), without root."""

from __future__ import annotations

import pytest

from ganeti_ext.network import nic, settings, state
from ganeti_ext.network.host import Host
from ganeti_ext.runner import CompletedCommand

ROUTED = {
    "INTERFACE": "tap0",
    "INSTANCE": "snf-1",
    "MAC": "aa:00:01:9b:9f:65",
    "IP": "198.51.100.3",
    "MODE": "routed",
    "LINK": "rt100",
    "INTERFACE_INDEX": "0",
    "NETWORK_NAME": "net1",
    "NETWORK_SUBNET": "198.51.100.0/24",
    "NETWORK_GATEWAY": "198.51.100.1",
    "NETWORK_SUBNET6": "2001:db8:100::/64",
    "NETWORK_GATEWAY6": "2001:db8:100::1",
    "NETWORK_MAC_PREFIX": "aa:00:01",
    "NETWORK_TAGS": "nfdhcpd ip-less-routed",
    "TAGS": "",
}


class ScriptedRunner:
    """Answers what Host asks (the table's routes), records the rest."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], str]] = []

    def run(self, argv, *, timeout, input=None, env=None, check=True):
        argv = tuple(argv)
        self.calls.append((argv, (input or b"").decode()))
        out, err, rc = b"", b"", 0
        if argv[:3] == ("ip", "-4", "-o"):
            out = b"default via 198.51.100.1 dev up0 proto static\n"
        elif argv[:3] == ("ip", "-6", "-o"):
            out = b"default via 2001:db8:100::1 dev up0 metric 1024\n"
        return CompletedCommand(argv, rc, out, err)

    def ip_input(self) -> str:
        return "".join(text for argv, text in self.calls if argv[0] == "ip" and "-batch" in argv)


@pytest.fixture
def node(tmp_path):
    sysctl = tmp_path / "sys"
    for dev in ("tap0", "up0"):
        for family in ("ipv4", "ipv6"):
            for kind in ("conf", "neigh"):  # as /proc/sys/net/<family>/ has per device
                (sysctl / "net" / family / kind / dev).mkdir(parents=True)
        (tmp_path / "class" / dev).mkdir(parents=True)
        (tmp_path / "class" / dev / "mtu").write_text("1500\n")
        (tmp_path / "class" / dev / "address").write_text("02:00:00:00:00:01\n")
    (tmp_path / "nf").mkdir()
    runner = ScriptedRunner()
    conf = settings.Settings(state_dir=tmp_path / "state", nfdhcpd_state_dir=tmp_path / "nf")
    host = Host(conf.state_dir, runner, sysctl_root=sysctl, class_net=tmp_path / "class")
    return nic.Context(conf, host), runner, sysctl


def written_sysctls(sysctl):
    return sorted(str(p.relative_to(sysctl)) for p in sysctl.rglob("*") if p.is_file())


def test_ip_less_routed_routes_proxies_and_rules(node):
    ctx, runner, sysctl = node
    nic.up(ROUTED, ctx)
    lines = runner.ip_input()
    assert "address flush dev tap0 scope global" in lines
    assert "route replace 198.51.100.3/32 dev tap0 table rt100" in lines
    assert "neigh replace proxy 198.51.100.3 dev up0" in lines
    assert "rule add iif tap0 table rt100" in lines
    assert "net/ipv4/conf/tap0/proxy_arp" in written_sysctls(sysctl)
    recorded = state.load(ctx.settings.state_dir, "tap0")
    assert recorded is not None and recorded.routed is not None


def test_routed_without_the_tag_only_brings_the_tap_up(node):
    ctx, runner, sysctl = node
    nic.up({**ROUTED, "NETWORK_TAGS": "nfdhcpd"}, ctx)
    lines = runner.ip_input().splitlines()
    assert lines == ["link set dev tap0 address cc:47:52:4e:45:54 up"]
    assert written_sysctls(sysctl) == []  # no proxy ARP/NDP, no forwarding
    assert not any(argv[:3] in (("ip", "-4", "-o"), ("ip", "-6", "-o")) for argv, _ in runner.calls)
    recorded = state.load(ctx.settings.state_dir, "tap0")
    assert recorded is not None and recorded.routed is None
    # still protected: the anti-spoofing chain went to nft
    assert any("from_tap0" in text for argv, text in runner.calls if argv[0] == "nft")
    assert (ctx.settings.nfdhcpd_state_dir / "tap0").exists()


def test_dropping_the_tag_removes_the_routes_of_the_previous_up(node):
    ctx, runner, _ = node
    nic.up(ROUTED, ctx)
    runner.calls.clear()
    nic.up({**ROUTED, "NETWORK_TAGS": "nfdhcpd"}, ctx)
    lines = runner.ip_input()
    assert "route del 198.51.100.3/32 dev tap0 table rt100" in lines
    assert "neigh del proxy 198.51.100.3 dev up0" in lines
    assert "rule del iif tap0 table rt100" in lines
    assert "route replace" not in lines


def test_masq_elements_are_recorded_and_removed_on_down(node):
    ctx, runner, _ = node
    nic.up({**ROUTED, "NETWORK_TAGS": "nfdhcpd masq"}, ctx)
    recorded = state.load(ctx.settings.state_dir, "tap0")
    assert recorded is not None and recorded.masq == ("198.51.100.3", "tap0")
    runner.calls.clear()
    nic.down("tap0", ctx)
    nft = "".join(text for argv, text in runner.calls if argv[0] == "nft")
    assert 'delete element inet snf_network masq_home { 198.51.100.3 . "tap0" }' in nft
