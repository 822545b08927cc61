"""snf-network's pure core: settings, NIC plans, nft/ip batches, frames."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from ganeti_ext.environ import nic as nic_env
from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.errors import ConfigError, ValidationError
from ganeti_ext.inet import checksum
from ganeti_ext.network import announce, links, nftrules, settings
from ganeti_ext.network.plan import plan_nic

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
    assert settings.parses("FIREWALL_MARK_MASK=0x0c000000").firewall_mark_mask == 0x0C000000


@pytest.mark.parametrize(
    "text, key",
    [
        pytest.param("STATE_DIRR=/x", "STATE_DIRR", id="typo"),
        pytest.param("STATE_DIR=relative", "STATE_DIR", id="relative"),
        pytest.param("TAP_CONSTANT_MAC=01:00:00:00:00:01", "TAP_CONSTANT_MAC", id="multicast"),
        pytest.param("MAC_MASK=ff:ff", "MAC_MASK", id="short-mask"),
        pytest.param("NFDHCPD_TAG='a b'", "NFDHCPD_TAG", id="two-words"),
        pytest.param("FIREWALL_MARK_MASK=0x100000", "FIREWALL_MARK_MASK", id="one-bit"),
        pytest.param("FIREWALL_MARK_MASK=0x1ffffffff", "FIREWALL_MARK_MASK", id="wide"),
        pytest.param("FIREWALL_MARK_MASK=lots", "FIREWALL_MARK_MASK", id="not-a-number"),
    ],
)
def test_bad_settings_name_the_key(text, key):
    with pytest.raises(ConfigError) as err:
        settings.parses(text, "/etc/default/snf-network")
    assert key in str(err.value) and "/etc/default/snf-network" in str(err.value)


# -- plans and profiles -----------------------------------------------------------------
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
MAC_MASK = "ff:ff:f0:00:00:00"
MARK_MASK = 0x00300000


def test_antispoof_rules_cover_mac_arp_ip_ra_dhcp():
    rules = nftrules.antispoof_rules(plan())
    assert rules[0] == "ether saddr != aa:00:01:9b:9f:65 drop"
    assert "meta protocol != arp meta protocol != ip meta protocol != ip6 drop" in rules
    assert "arp saddr ip != 198.51.100.3 arp saddr ip != 0.0.0.0 drop" in rules
    assert "ip saddr != 198.51.100.3 drop" in rules
    assert "meta protocol ip udp sport 67 drop" in rules
    assert "icmpv6 type nd-router-advert drop" in rules
    assert "icmpv6 type nd-redirect drop" in rules
    assert "meta protocol ip6 udp sport 547 drop" in rules
    assert f"ip6 saddr != :: ip6 saddr != fe80::/64 ip6 saddr != {EUI64} drop" in rules
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


def test_rarp_announcements_pass_only_broadcast_from_the_vms_own_mac():
    """qemu's post-migration announcements are RARP; the MAC check comes first."""
    rules = nftrules.antispoof_rules(plan())
    rarp = "meta protocol 0x8035 ether daddr ff:ff:ff:ff:ff:ff accept"
    assert rules.index("ether saddr != aa:00:01:9b:9f:65 drop") < rules.index(rarp)
    assert rules.index(rarp) < rules.index(
        "meta protocol != arp meta protocol != ip meta protocol != ip6 drop"
    )
    assert not any("0x8035" in rule for rule in nftrules.antispoof_rules(plan(MAC=None)))


def test_antispoof_rules_use_no_anonymous_set():
    """Every anonymous set in a tap's chain is one more set nft fetches on each later up."""
    for got in (plan(), plan(IP=None), plan(MODE="routed", LINK="100")):
        assert not any("{" in rule for rule in nftrules.antispoof_rules(got))


def test_antispoof_without_ip_allows_only_dhcp_discovery():
    rules = nftrules.antispoof_rules(plan(IP=None))
    assert "arp saddr ip != 0.0.0.0 drop" in rules and "meta protocol ip drop" in rules


def test_fresh_up_only_adds():
    """No table, flush, delete or anonymous set: nft fetches no other tap's rules, the
    kernel waits for no grace period, and a missing skeleton or an existing chain makes
    the batch fail instead of half-applying."""
    batch = nftrules.fresh_up_batch(plan(TAGS="synnefo:network:0:limited"), MAC_MASK)
    lines = batch.splitlines()
    assert lines[:3] == [
        'add element bridge snf_network fw_limited { "tap0" }',
        'add element inet snf_network fw_limited { "tap0" }',
        "create chain netdev snf_network from_tap0 { type filter hook ingress"
        ' device "tap0" priority -150; policy accept; }',
    ]
    assert all(line.startswith(("add element", "create chain", "add rule")) for line in lines)
    assert "add rule netdev snf_network from_tap0 ether saddr != aa:00:01:9b:9f:65 drop" in lines
    assert "to_tap0" not in batch


def test_fresh_up_without_profile_joins_no_set():
    batch = nftrules.fresh_up_batch(plan(TAGS="synnefo:network:0:unprotected"), MAC_MASK)
    assert "fw_" not in batch and batch.startswith("create chain netdev")


def test_private_filtered_masks_the_prefix():
    got = plan(NETWORK_TAGS="private-filtered", NETWORK_MAC_PREFIX="aa:12:34")
    assert nftrules.private_filter_rules(got, MAC_MASK) == [
        "ether saddr & ff:ff:f0:00:00:00 != aa:12:30:00:00:00 drop"
    ]
    fresh = nftrules.fresh_up_batch(got, MAC_MASK).splitlines()
    assert fresh[-3:] == [
        "create chain bridge snf_network to_tap0",
        "add rule bridge snf_network to_tap0 ether saddr & ff:ff:f0:00:00:00"
        " != aa:12:30:00:00:00 drop",
        'add element bridge snf_network to_vm { "tap0" : jump to_tap0 }',
    ]
    full = nftrules.up_batch(got, MAC_MASK, MARK_MASK)
    assert "flush chain bridge snf_network to_tap0" in full
    assert "delete chain bridge snf_network to_tap0" not in full


def test_skeleton_marks_bridged_profiles_and_dispatches_by_set_and_mark():
    lines = nftrules.skeleton(MARK_MASK)
    bridge = [line.split(" forward ", 1)[1] for line in lines if "rule bridge" in line]
    assert bridge == [
        "meta mark set meta mark & 0xffcfffff",
        "oifname @fw_protected meta mark set meta mark | 0x00100000",
        "oifname @fw_limited meta mark set meta mark | 0x00200000",
        "oifname vmap @to_vm",
    ]
    inet = "add rule inet snf_network forward "
    forward = [line.removeprefix(inet) for line in lines if line.startswith(inet)]
    assert forward == [
        "oifname @fw_protected jump protected",
        "oifname @fw_limited jump limited",
        "meta mark & 0x00300000 vmap { 0x00100000 : jump protected, 0x00200000 : jump limited }",
    ]
    # base chains are emptied and refilled in the same transaction: never doubled
    assert lines.index("flush chain inet snf_network forward") < lines.index(
        "add rule inet snf_network forward oifname @fw_protected jump protected"
    )


def test_profiles():
    protected = nftrules.profile_rules("protected")
    assert protected == [
        "ct state established,related accept",
        "meta l4proto { icmp, ipv6-icmp } accept",
        "drop",
    ]
    assert nftrules.profile_rules("limited") == [
        *protected[:2],
        "tcp dport { 22, 3389 } accept",
        "drop",
    ]


def test_mark_bits_are_the_masks_two_bits():
    assert nftrules.mark_bits(0x0C000000) == {"protected": 0x04000000, "limited": 0x08000000}


def test_full_up_leaves_every_profile_before_joining_one():
    lines = nftrules.up_batch(plan(TAGS="synnefo:network:0:protected"), MAC_MASK, MARK_MASK)
    lines = lines.splitlines()
    assert lines[: len(nftrules.skeleton(MARK_MASK))] == nftrules.skeleton(MARK_MASK)
    for family in ("bridge", "inet"):
        for profile in ("protected", "limited"):
            element = f'element {family} snf_network fw_{profile} {{ "tap0" }}'
            assert lines.index(f"add {element}") < lines.index(f"delete {element}")
        joined = f'add element {family} snf_network fw_protected {{ "tap0" }}'
        leave = f'delete element {family} snf_network fw_protected {{ "tap0" }}'
        assert len(lines) - lines[::-1].index(joined) - 1 > lines.index(leave)
    assert "flush chain netdev snf_network from_tap0" in lines
    # not private-filtered: the egress chain and map element are removed if present
    assert lines[-2:] == [
        'delete element bridge snf_network to_vm { "tap0" : jump to_tap0 }',
        "delete chain bridge snf_network to_tap0",
    ]


def test_down_batch_removes_only_this_tap():
    batch = nftrules.down_batch("tap7", tap_exists=True)
    assert batch.splitlines()[-1] == "delete chain netdev snf_network from_tap7"
    assert "delete chain bridge snf_network to_tap7" in batch
    assert 'delete element inet snf_network fw_limited { "tap7" }' in batch
    assert "tap0" not in batch and "add table" not in batch


def test_down_of_a_vanished_tap_leaves_its_ingress_chain_to_delete_ingress():
    batch = nftrules.down_batch("tap7", tap_exists=False)
    assert "netdev" not in batch
    assert nftrules.delete_ingress("tap7") == "delete chain netdev snf_network from_tap7\n"
    with_skeleton = nftrules.down_batch("tap7", tap_exists=False, mark_mask=MARK_MASK)
    assert with_skeleton.startswith("add table netdev snf_network\n")


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
    assert checksum(pseudo + body) == 0
    assert body[0] == 136 and body[8:24] == address.packed


# -- masq --------------------------------------------------------------------------------
def test_masq_nic_adds_its_address_and_home_interface():
    bridged = plan(NETWORK_TAGS="nfdhcpd masq")
    assert nftrules.masq_of(bridged) == ("198.51.100.3", "br0")
    routed = plan(MODE="routed", LINK="100", NETWORK_TAGS="masq")
    assert nftrules.masq_of(routed) == ("198.51.100.3", "tap0")  # back out of the tap: as is
    assert nftrules.masq_of(plan()) is None and nftrules.masq_of(plan(IP=None)) is None
    lines = nftrules.fresh_up_batch(bridged, MAC_MASK).splitlines()
    assert "add element inet snf_network masq_src { 198.51.100.3 }" in lines
    assert 'add element inet snf_network masq_home { 198.51.100.3 . "br0" }' in lines


def test_skeleton_masquerades_only_away_from_the_home_interface():
    lines = nftrules.skeleton(MARK_MASK)
    assert (
        "add chain inet snf_network postrouting"
        " { type nat hook postrouting priority srcnat; policy accept; }"
    ) in lines
    assert (
        "add rule inet snf_network postrouting"
        " ip saddr @masq_src ip saddr . oifname != @masq_home masquerade"
    ) in lines


def test_full_up_drops_the_recorded_masq_elements_first():
    old = ("198.51.100.9", "br0")
    lines = nftrules.up_batch(plan(), MAC_MASK, MARK_MASK, old).splitlines()
    gone = "element inet snf_network masq_src { 198.51.100.9 }"
    assert lines.index(f"add {gone}") < lines.index(f"delete {gone}")
    assert not any("198.51.100.3" in line and "masq" in line for line in lines)
    down = nftrules.down_batch("tap0", tap_exists=True, masq=old)
    assert 'delete element inet snf_network masq_home { 198.51.100.9 . "br0" }' in down
