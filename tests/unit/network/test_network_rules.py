"""snf-network's pure core: settings, NIC plans, nft/iptables/ip batches, frames."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from ganeti_ext.environ import nic as nic_env
from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.errors import ConfigError, ValidationError
from ganeti_ext.network import announce, iptrules, links, nftrules, settings
from ganeti_ext.network.plan import firewall_profile, plan_nic

BRIDGED = {
    "INTERFACE": "tap0",
    "INSTANCE": "snf-1",
    "MAC": "aa:00:01:9b:9f:65",
    "IP": "198.51.100.3",
    "MODE": "bridged",
    "LINK": "br0",
    "INTERFACE_INDEX": "0",
    "INTERFACE_UUID": "87be0ad4-775b-4f69-a939-8680e0775eba",
    "NETWORK_NAME": "net1",
    "NETWORK_SUBNET": "198.51.100.0/24",
    "NETWORK_GATEWAY": "198.51.100.1",
    "NETWORK_SUBNET6": "2001:db8:100::/64",
    "NETWORK_GATEWAY6": "2001:db8:100::1",
    "NETWORK_MAC_PREFIX": "aa:00:01",
    "NETWORK_TAGS": "nfdhcpd",
    "TAGS": "",
}
EUI64 = "2001:db8:100:0:a800:1ff:fe9b:9f65"


def plan(**changes):
    env = {**BRIDGED, **changes}
    return plan_nic(
        nic_env.parse({k: v for k, v in env.items() if v is not None}), settings.Settings()
    )


# -- settings -------------------------------------------------------------------------
def test_shipped_defaults_file_is_all_defaults():
    text = Path("kvm-ifup/default/snf-network").read_text()
    assert settings.parses(text) == settings.Settings()


def test_settings_values_and_quotes():
    got = settings.parses('STATE_DIR="/srv/snf"\nMAC_MASK=FF:FF:FF:00:00:00 # wide\n')
    assert str(got.state_dir) == "/srv/snf" and got.mac_mask == "ff:ff:ff:00:00:00"


@pytest.mark.parametrize(
    "text, key",
    [
        pytest.param("STATE_DIRR=/x", "STATE_DIRR", id="typo"),
        pytest.param("STATE_DIR=relative", "STATE_DIR", id="relative"),
        pytest.param("TAP_CONSTANT_MAC=01:00:00:00:00:01", "TAP_CONSTANT_MAC", id="multicast"),
        pytest.param("MAC_MASK=ff:ff", "MAC_MASK", id="short-mask"),
        pytest.param("NFDHCPD_TAG='a b'", "NFDHCPD_TAG", id="two-words"),
    ],
)
def test_bad_settings_name_the_key(text, key):
    with pytest.raises(ConfigError) as err:
        settings.parses(text, "/etc/default/snf-network")
    assert key in str(err.value) and "/etc/default/snf-network" in str(err.value)


# -- plans and profiles -----------------------------------------------------------------
@pytest.mark.parametrize(
    "tags, expected",
    [
        pytest.param((), None, id="none"),
        pytest.param(("synnefo:network:0:limited",), "limited", id="index"),
        pytest.param(("synnefo:network:mgmt:protected",), "protected", id="name"),
        pytest.param(
            ("synnefo:network:87be0ad4-775b-4f69-a939-8680e0775eba:unprotected",),
            "unprotected",
            id="uuid",
        ),
        pytest.param(("synnefo:network:1:limited",), None, id="other-nic"),
        pytest.param(("synnefo:network:0:open",), None, id="unknown-profile"),
        pytest.param(("owner:alice", "synnefo:network:0:protected"), "protected", id="mixed"),
    ],
)
def test_firewall_profile_from_tags(tags, expected):
    keys = ("0", "mgmt", "87be0ad4-775b-4f69-a939-8680e0775eba")
    assert firewall_profile(tags, "synnefo:network:", keys) == expected


def test_plan_of_real_capture():
    env = read_env_file(Path("tests/data/env/real/nic-bridged-network.env").read_text())
    got = plan_nic(nic_env.parse(env), settings.Settings())
    assert got.mode == "bridged" and got.link == "br0" and got.nfdhcpd
    assert got.ipv6 == ipaddress.IPv6Address("2001:db8:100::a800:1ff:fe9b:9f65")
    assert got.restrict_ipv4 and got.restrict_ipv6 and got.profile is None


def test_plan_of_nic_without_network_keeps_only_mac_checks():
    env = read_env_file(Path("tests/data/env/real/nic-bridged-plain.env").read_text())
    got = plan_nic(nic_env.parse(env), settings.Settings())
    assert not got.restrict_ipv4 and not got.restrict_ipv6 and not got.nfdhcpd


def test_ip_less_routed_without_ip_is_refused():
    with pytest.raises(ValidationError):
        plan(MODE="routed", LINK="100", IP=None, NETWORK_TAGS="ip-less-routed")


@pytest.mark.parametrize(
    "mode, tags, expected",
    [
        pytest.param("routed", "nfdhcpd ip-less-routed", True, id="routed-tagged"),
        pytest.param("routed", "nfdhcpd", False, id="routed-untagged"),
        pytest.param("bridged", "ip-less-routed", False, id="bridged-tagged"),
    ],
)
def test_only_a_routed_nic_with_the_tag_is_ip_less_routed(mode, tags, expected):
    got = plan(MODE=mode, LINK="100" if mode == "routed" else "br0", NETWORK_TAGS=tags)
    assert got.ip_less_routed is expected


def test_ip_less_routed_tag_name_comes_from_the_settings():
    env = {**BRIDGED, "MODE": "routed", "LINK": "100", "NETWORK_TAGS": "l3"}
    custom = settings.parses("IP_LESS_ROUTED_TAG=l3")
    assert plan_nic(nic_env.parse(env), custom).ip_less_routed
    assert not plan_nic(nic_env.parse(env), settings.Settings()).ip_less_routed


def test_untagged_routed_nic_without_ip_keeps_its_antispoofing():
    got = plan(MODE="routed", LINK="100", IP=None)  # upstream needed no IP here either
    assert not got.ip_less_routed and got.restrict_ipv4
    assert "ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept" in nftrules.antispoof_rules(got)


# -- nft --------------------------------------------------------------------------------
def test_antispoof_rules_cover_mac_arp_ip_ra_dhcp():
    rules = nftrules.antispoof_rules(plan())
    assert rules[0] == "ether saddr != aa:00:01:9b:9f:65 drop"
    assert "meta protocol != { arp, ip, ip6 } drop" in rules
    assert "arp saddr ip != { 198.51.100.3, 0.0.0.0 } drop" in rules
    assert "ip saddr != 198.51.100.3 drop" in rules
    assert "meta protocol ip udp sport 67 drop" in rules
    assert "icmpv6 type { nd-router-advert, nd-redirect } drop" in rules
    assert "meta protocol ip6 udp sport 547 drop" in rules
    assert f"ip6 saddr != {{ ::, fe80::/64, {EUI64} }} drop" in rules
    na = [rule for rule in rules if "nd-neighbor-advert" in rule]
    target = f"0x{int(ipaddress.IPv6Address(EUI64)):032x}"
    assert na == [
        "icmpv6 type nd-neighbor-advert @th,64,64 != 0xfe80000000000000"
        f" @th,64,128 != {target} drop"
    ]
    # DHCP discovery (from 0.0.0.0) is accepted before the source check drops it.
    assert rules.index("ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept") < rules.index(
        "ip saddr != 198.51.100.3 drop"
    )


def test_antispoof_without_ip_allows_only_dhcp_discovery():
    rules = nftrules.antispoof_rules(plan(IP=None))
    assert "arp saddr ip != 0.0.0.0 drop" in rules and "meta protocol ip drop" in rules


def test_up_batch_is_one_transaction_and_idempotent_by_construction():
    batch = nftrules.up_batch(plan(), "ff:ff:f0:00:00:00")
    lines = batch.splitlines()
    assert lines[0] == "add table netdev snf_network"
    assert 'hook ingress device "tap0"' in batch
    assert "flush chain netdev snf_network from_tap0" in lines
    # not private-filtered: the egress chain and map element are removed if present
    assert lines[-2:] == [
        'delete element bridge snf_network to_vm { "tap0" : jump to_tap0 }',
        "delete chain bridge snf_network to_tap0",
    ]


def test_private_filtered_masks_the_prefix():
    got = plan(NETWORK_TAGS="private-filtered", NETWORK_MAC_PREFIX="aa:12:34")
    assert nftrules.private_filter_rules(got, "ff:ff:f0:00:00:00") == [
        "ether saddr & ff:ff:f0:00:00:00 != aa:12:30:00:00:00 drop"
    ]
    batch = nftrules.up_batch(got, "ff:ff:f0:00:00:00")
    assert "add rule bridge snf_network to_tap0 ether saddr" in batch
    assert "delete chain bridge snf_network to_tap0" not in batch


def test_down_batch_removes_only_this_tap():
    batch = nftrules.down_batch("tap7")
    assert "delete chain netdev snf_network from_tap7" in batch
    assert "delete chain bridge snf_network to_tap7" in batch
    assert "tap0" not in batch
    assert (
        "netdev" not in nftrules.down_batch("tap7", with_ingress=False).split("add table netdev")[1]
    )


# -- iptables -----------------------------------------------------------------------------
@pytest.mark.parametrize("family, icmp", [(4, "icmp"), (6, "ipv6-icmp")])
def test_profiles(family, icmp):
    protected = iptrules.profile_rules("protected", family)
    assert protected == [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-p {icmp} -j ACCEPT",
        "-j DROP",
    ]
    limited = iptrules.profile_rules("limited", family)
    assert limited[:2] == protected[:2] and limited[-1] == "-j DROP"
    assert "-p tcp -m tcp --dport 22 -j ACCEPT" in limited
    assert "-p tcp -m tcp --dport 3389 -j ACCEPT" in limited
    assert iptrules.profile_rules("unprotected", family) == []
    assert iptrules.profile_rules(None, family) == []


def test_first_up_creates_dispatch_chain_and_jump():
    batch = iptrules.up_batch(
        plan(TAGS="synnefo:network:0:limited"), 4, iptrules.parse_dispatch(None)
    )
    assert batch.splitlines() == [
        "*filter",
        ":snf-network - [0:0]",
        "-I FORWARD 1 -j snf-network",
        ":snf-tap0 - [0:0]",
        "-A snf-tap0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "-A snf-tap0 -p icmp -j ACCEPT",
        "-A snf-tap0 -p tcp -m tcp --dport 22 -j ACCEPT",
        "-A snf-tap0 -p tcp -m tcp --dport 3389 -j ACCEPT",
        "-A snf-tap0 -j DROP",
        "-A snf-network -m physdev --physdev-out tap0 --physdev-is-bridged -j snf-tap0",
        "COMMIT",
    ]


SHOWN = """-N snf-network
-A snf-network -m physdev --physdev-out tap0 --physdev-is-bridged -j snf-tap0
-A snf-network -o tap10 -j snf-tap10
"""


def test_second_up_does_not_duplicate_the_jump():
    batch = iptrules.up_batch(
        plan(TAGS="synnefo:network:0:protected"), 4, iptrules.parse_dispatch(SHOWN)
    )
    assert "-A snf-network" not in batch and ":snf-network" not in batch
    assert ":snf-tap0 - [0:0]" in batch  # flushes the old profile's rules


def test_profile_removed_drops_chain_and_jump():
    batch = iptrules.up_batch(plan(), 4, iptrules.parse_dispatch(SHOWN))
    assert batch.splitlines()[1:] == [
        "-D snf-network -m physdev --physdev-out tap0 --physdev-is-bridged -j snf-tap0",
        ":snf-tap0 - [0:0]",
        "-X snf-tap0",
        "COMMIT",
    ]
    assert iptrules.up_batch(plan(), 4, iptrules.parse_dispatch("-N snf-network\n")) is None


def test_mode_change_replaces_the_jump():
    got = plan(MODE="routed", LINK="100", TAGS="synnefo:network:0:protected")
    batch = iptrules.up_batch(got, 6, iptrules.parse_dispatch(SHOWN))
    assert "-D snf-network -m physdev --physdev-out tap0 --physdev-is-bridged -j snf-tap0" in batch
    assert "-A snf-network -o tap0 -j snf-tap0" in batch


def test_down_touches_only_its_tap():
    batch = iptrules.down_batch("tap10", iptrules.parse_dispatch(SHOWN))
    assert "tap0 " not in batch and "-X snf-tap10" in batch
    assert iptrules.down_batch("tap3", iptrules.parse_dispatch(SHOWN)) is None


# -- links ----------------------------------------------------------------------------------
def test_bridged_lines():
    assert links.bridged_lines(plan(), 1400, "12:34:56:78:9a:bc") == [
        "link set dev tap0 address fe:34:56:78:9a:bc mtu 1400 master br0 up"
    ]


def test_routed_setup_and_undo():
    got = plan(MODE="routed", LINK="100", NETWORK_TAGS="ip-less-routed")
    setup = links.routed_setup(got, ("eth1",))
    assert setup.routes == ("198.51.100.3/32", f"{EUI64}/128")
    assert setup.tap_proxies == ("2001:db8:100::1",)
    assert ("198.51.100.3", "eth1") in setup.uplink_proxies
    up = links.routed_up_lines(got, setup, "cc:47:52:4e:45:54")
    assert up[0] == "link set dev tap0 address cc:47:52:4e:45:54 up"
    # ip-less: the host keeps no address of its own in the network on the tap
    assert up[1] == "address flush dev tap0 scope global"
    assert not any(line.startswith(("address add", "addr add")) for line in up)
    assert not any(line.startswith("rule") for line in up)
    assert links.rule_line("add", "tap0", setup.table) == "rule add iif tap0 table 100"
    assert links.rule_families(setup) == (4, 6)
    down = links.routed_down_lines("tap0", setup)
    assert f"neigh del proxy {EUI64} dev eth1" in down
    assert links.routed_sysctls("tap0", ("eth1",))["net/ipv4/conf/tap0/proxy_arp"] == "1"
    # proxied answers at once, not after the kernel's random delay of up to 0.8 s
    values = links.routed_sysctls("tap0", ("eth1",))
    assert values["net/ipv6/neigh/tap0/proxy_delay"] == "0"
    assert values["net/ipv6/neigh/eth1/proxy_delay"] == "0"


def test_parse_uplinks():
    output = "default via 198.51.100.1 dev eth1 proto static\n10.0.0.5 dev tap3 scope link\n"
    assert links.parse_uplinks(output) == ("eth1",)


def test_ovs_access_and_trunk():
    got = plan(MODE="openvswitch", LINK="ovs0", VLAN=".10:20:30")
    commands = links.ovs_commands(got)
    assert ["ovs-vsctl", "set", "port", "tap0", "tag=10"] in commands
    assert ["ovs-vsctl", "set", "port", "tap0", "trunks=20,30"] in commands


# -- announcements ----------------------------------------------------------------------------
def test_garp_frame():
    frame = announce.garp_frame("02:00:00:00:00:01", ipaddress.IPv4Address("198.51.100.3"))
    assert frame[:6] == b"\xff" * 6 and frame[12:14] == b"\x08\x06"
    op, _sha, spa, tpa = struct.unpack("!6xH6s4s6x4s", frame[14:42])
    assert op == 1 and spa == tpa == bytes([198, 51, 100, 3])


def test_unsolicited_na_checksum_verifies():
    address = ipaddress.IPv6Address(EUI64)
    frame = announce.unsolicited_na_frame("02:00:00:00:00:01", address, address)
    ipv6, body = frame[14:54], frame[54:]
    pseudo = ipv6[8:40] + struct.pack("!I3xB", len(body), 58)
    assert announce._checksum(pseudo + body) == 0
    assert body[0] == 136 and body[8:24] == address.packed


# `nft list chains` as nft 1.0.6 prints it, with another component's table beside ours.
LISTED_CHAINS = """\
table netdev snf_network {
\tchain from_tap3 {
\t\ttype filter hook ingress device "tap3" priority -150; policy accept;
\t}
}
table bridge snf_network {
\tchain dispatch {
\t\ttype filter hook forward priority -150; policy accept;
\t}
\tchain to_tap3 {
\t}
}
table ip filter {
\tchain from_tap0 {
\t}
}
"""


def test_parse_chains_keeps_only_our_tables():
    assert nftrules.parse_chains(LISTED_CHAINS) == {
        ("netdev", "from_tap3"),
        ("bridge", "dispatch"),
        ("bridge", "to_tap3"),
    }


def test_up_of_a_fresh_tap_needs_no_rule_cache():
    """No flush and no `add rule`: nft then never fetches the other taps' rules."""
    batch = nftrules.up_batch(plan(), "ff:ff:f0:00:00:00", nftrules.parse_chains(LISTED_CHAINS))
    assert "flush" not in batch and "add rule" not in batch and "delete" not in batch
    assert "chain from_tap0 {" in batch
    assert "ether saddr != aa:00:01:9b:9f:65 drop" in batch


def test_up_of_a_known_tap_replaces_its_rules_and_drops_a_stale_egress_chain():
    listed = nftrules.parse_chains(LISTED_CHAINS.replace("tap3", "tap0"))
    batch = nftrules.up_batch(plan(), "ff:ff:f0:00:00:00", listed)
    assert "flush chain netdev snf_network from_tap0" in batch
    assert "delete chain bridge snf_network to_tap0" in batch
    assert "flush chain bridge snf_network dispatch" not in batch  # the skeleton is there


def test_first_up_on_a_node_makes_the_skeleton():
    batch = nftrules.up_batch(plan(), "ff:ff:f0:00:00:00", frozenset())
    assert "add rule bridge snf_network dispatch oifname vmap @to_vm" in batch


def test_down_with_a_listing_deletes_only_what_exists():
    listed = nftrules.parse_chains(LISTED_CHAINS)
    batch = nftrules.down_batch("tap3", existing=listed)
    assert "delete chain netdev snf_network from_tap3" in batch
    assert 'delete element bridge snf_network to_vm { "tap3" }' in batch
    assert "delete chain bridge snf_network to_tap3" in batch
    assert "delete" not in nftrules.down_batch("tap9", existing=listed)
