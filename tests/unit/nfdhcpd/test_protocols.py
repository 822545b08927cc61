"""DHCPv4, RA/NS and DHCPv6 answers on frames built with scapy: no NFQUEUE, no root."""

from __future__ import annotations

import ipaddress

import pytest
from scapy.all import (
    BOOTP,
    DHCP,
    IP,
    UDP,
    DHCP6_InfoRequest,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptIA_NA,
    DHCP6OptServerId,
    Ether,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    raw,
)

from ganeti_ext.bindings import parse_binding
from ganeti_ext.nfdhcpd import dhcpv4, dhcpv6, ndp
from ganeti_ext.nfdhcpd.responder import ACCEPT, DROP, Responder
from ganeti_ext.nfdhcpd.table import BindingTable

MAC = "aa:00:01:00:00:05"
MACB = bytes.fromhex("aa0001000005")
TAP_MAC = bytes.fromhex("020000000001")
BINDING = (
    f"MAC={MAC}\nHOSTNAME=vm5.lab.test\nIP=198.51.100.50\nSUBNET=198.51.100.0/24\n"
    "GATEWAY=198.51.100.1\nSUBNET6=2001:db8:100::/64\nGATEWAY6=2001:db8:100::1\nMTU=1450\n"
)


def responder(text: str = BINDING, tap: str = "tap5", **dhcp) -> Responder:
    table = BindingTable("/nonexistent")
    table._put(parse_binding(text, source=tap))
    settings = dhcpv4.Settings(
        nameservers=(ipaddress.IPv4Address("198.51.100.53"),), domain="lab.test", **dhcp
    )
    v6 = ndp.Settings(nameservers=(ipaddress.IPv6Address("2001:db8::53"),), domains=("lab.test",))
    return Responder(table, settings, v6, lambda _dev: TAP_MAC)


def dhcp_packet(kind: str, chaddr: bytes = MACB, **extra) -> bytes:
    options = [("message-type", kind), *extra.items(), "end"]
    return raw(
        IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=chaddr, xid=0x1234)
        / DHCP(options=options)
    )


def options(frame: bytes) -> dict:
    reply = Ether(frame)
    assert reply[UDP].chksum == Ether(raw(reply.copy()))[UDP].chksum
    return {o[0]: o[1] for o in reply[DHCP].options if isinstance(o, tuple)}


def test_discover_gets_offer_with_every_option():
    out = responder().dhcpv4(dhcp_packet("discover"), "br0", "tap5", MACB)
    assert out.verdict == DROP and out.frames[0][0] == "tap5"
    frame = Ether(out.frames[0][1])
    assert frame.dst == MAC and frame[IP].dst == "198.51.100.50"
    assert frame[BOOTP].yiaddr == "198.51.100.50"
    opts = options(out.frames[0][1])
    assert opts["message-type"] == 2
    assert opts["server_id"] == "198.51.100.1"
    assert opts["subnet_mask"] == "255.255.255.0"
    assert opts["router"] == "198.51.100.1"
    assert opts["broadcast_address"] == "198.51.100.255"
    assert opts["name_server"] == "198.51.100.53"
    assert opts["domain"] == b"lab.test"
    assert opts["hostname"] == b"vm5"
    assert opts["interface-mtu"] == 1450
    assert opts["lease_time"] == 604800 and opts["renewal_time"] == 600


def test_request_for_bound_address_is_acked_and_recorded():
    r = responder()
    out = r.dhcpv4(
        dhcp_packet("request", requested_addr="198.51.100.50", server_id="198.51.100.1"),
        "br0",
        "tap5",
        MACB,
    )
    assert options(out.frames[0][1])["message-type"] == 5
    assert r.leases["tap5"].state == "bound"


def test_request_for_other_address_is_naked_by_broadcast():
    out = responder().dhcpv4(
        dhcp_packet("request", requested_addr="198.51.100.99"), "br0", "tap5", MACB
    )
    frame = Ether(out.frames[0][1])
    assert options(out.frames[0][1])["message-type"] == 6
    assert frame[IP].dst == "255.255.255.255" and frame[BOOTP].yiaddr == "0.0.0.0"


def test_request_for_another_server_is_ignored():
    out = responder().dhcpv4(
        dhcp_packet("request", requested_addr="198.51.100.50", server_id="198.51.100.7"),
        "br0",
        "tap5",
        MACB,
    )
    assert out.verdict == DROP and not out.frames


def test_inform_acked_without_address_and_private_has_no_router():
    r = responder(BINDING + "PRIVATE=yes\n")
    out = r.dhcpv4(dhcp_packet("inform"), "br0", "tap5", MACB)
    opts = options(out.frames[0][1])
    assert opts["message-type"] == 5 and "router" not in opts and "lease_time" not in opts
    assert Ether(out.frames[0][1])[BOOTP].yiaddr == "0.0.0.0"


@pytest.mark.parametrize("kind", ["release", "decline"])
def test_release_and_decline_are_recorded_not_answered(kind):
    r = responder()
    out = r.dhcpv4(dhcp_packet(kind), "br0", "tap5", MACB)
    assert out.verdict == DROP and not out.frames
    assert r.leases["tap5"].state == kind + "d"


def test_unbound_device_is_accepted_untouched():
    out = responder().dhcpv4(dhcp_packet("discover"), "br0", "tap9", MACB)
    assert out.verdict == ACCEPT and not out.frames


def test_spoofed_chaddr_is_dropped_unless_macspoof():
    other = bytes.fromhex("aa0001000099")
    assert responder().dhcpv4(dhcp_packet("discover", other), "br0", "tap5", other).frames == ()
    out = responder(BINDING + "MACSPOOF=yes\n").dhcpv4(
        dhcp_packet("discover", other), "br0", "tap5", other
    )
    assert out.frames


def test_mac_keyed_fallback_by_indev():
    r = responder(BINDING + "INDEV=br7\n", tap="vm5")
    out = r.dhcpv4(dhcp_packet("discover"), "br7", None, MACB)
    assert out.frames and out.frames[0][0] == "br7"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x01" * 10, id="tiny"),
        pytest.param(raw(BOOTP(chaddr=MACB)), id="plain-bootp-no-magic"),
        pytest.param(raw(BOOTP(chaddr=MACB, options=b"\x63\x82\x53\x63")), id="no-message-type"),
        pytest.param(raw(BOOTP(chaddr=MACB, options=b"\x63\x82\x53\x63\x35\x05\x01")), id="cut"),
        pytest.param(
            raw(BOOTP(op=2, chaddr=MACB) / DHCP(options=[("message-type", 1)])), id="reply"
        ),
    ],
)
def test_malformed_bootp_from_bound_tap_is_dropped_silently(payload):
    packet = raw(IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67) / payload)
    out = responder().dhcpv4(packet, "br0", "tap5", MACB)
    assert out.verdict == DROP and not out.frames
    assert responder().dhcpv4(packet, "br0", "tap9", MACB).verdict == ACCEPT


def test_rs_gets_ra_with_prefix_mtu_dns():
    rs = IPv6(src="fe80::a800:1ff:fe00:5", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
    out = responder().icmpv6(raw(rs / ICMPv6NDOptSrcLLAddr(lladdr=MAC)), "br0", "tap5", MACB)
    frame = Ether(out.frames[0][1])
    ra = frame[ICMPv6ND_RA]
    assert frame[IPv6].src == "fe80::ff:fe00:1" and frame[IPv6].hlim == 255
    assert ra.M == 0 and ra.O == 0 and ra.routerlifetime == 1800
    assert Ether(raw(frame))[ICMPv6ND_RA].cksum == ra.cksum
    text = frame.show2(dump=True)
    assert "2001:db8:100::" in text and "2001:db8::53" in text and "lab.test" in text


def test_dhcpv6_mode_sets_managed_flag_and_no_autonomous_prefix():
    b = parse_binding(BINDING, source="tap5")
    frame = Ether(ndp.router_advertisement(b, ndp.Settings(mode="dhcpv6"), TAP_MAC))
    assert frame[ICMPv6ND_RA].M == 1 and frame[ICMPv6ND_RA].O == 1
    assert "A         = 0" in frame.show2(dump=True)


def test_ns_for_gateway_gets_na_and_for_neighbour_on_bridge_passes():
    def ns(target):
        return raw(
            IPv6(src="fe80::a800:1ff:fe00:5", dst="ff02::1:ff00:1", hlim=255)
            / ICMPv6ND_NS(tgt=target)
            / ICMPv6NDOptSrcLLAddr(lladdr=MAC)
        )

    out = responder().icmpv6(ns("2001:db8:100::1"), "br0", "tap5", MACB)
    na = Ether(out.frames[0][1])[ICMPv6ND_NA]
    assert na.tgt == "2001:db8:100::1" and na.R == 1 and na.S == 1
    assert responder().icmpv6(ns("2001:db8:100::77"), "br0", "tap5", MACB).verdict == ACCEPT
    routed = responder().icmpv6(ns("2001:db8:100::77"), "tap5", None, MACB)
    assert routed.frames  # proxy NDP on routed taps


def _dhcpv6(message) -> bytes:
    return raw(
        IPv6(src="fe80::a800:1ff:fe00:5", dst="ff02::1:2") / UDP(sport=546, dport=547) / message
    )


def test_dhcpv6_solicit_then_request_gets_eui64_address():
    r = responder()
    solicit = DHCP6_Solicit(trid=7) / DHCP6OptClientId(duid=b"\x00\x03\x00\x01" + MACB)
    out = r.dhcpv6(_dhcpv6(solicit / DHCP6OptIA_NA(iaid=1)), "br0", "tap5", MACB)
    reply = Ether(out.frames[0][1])
    assert reply[UDP].dport == 546 and reply[IPv6].dst == "fe80::a800:1ff:fe00:5"
    assert ipaddress.IPv6Address("2001:db8:100:0:a800:1ff:fe00:5").packed in out.frames[0][1]
    server = dhcpv6.server_duid(TAP_MAC)
    request = (
        DHCP6_Request(trid=8)
        / DHCP6OptClientId(duid=b"\x00\x03\x00\x01" + MACB)
        / DHCP6OptServerId(duid=server)
        / DHCP6OptIA_NA(iaid=1)
    )
    out = r.dhcpv6(_dhcpv6(request), "br0", "tap5", MACB)
    assert out.frames[0][1][14 + 40 + 8] == dhcpv6.REPLY


def test_dhcpv6_information_request_gets_dns():
    out = responder().dhcpv6(_dhcpv6(DHCP6_InfoRequest(trid=9)), "br0", "tap5", MACB)
    text = Ether(out.frames[0][1]).show2(dump=True)
    assert "2001:db8::53" in text and "lab.test" in text


def test_one_bad_binding_never_stops_the_ra_round():
    r = responder()
    calls = []

    def mac_of(dev):
        calls.append(dev)
        if dev == "tap5":
            raise RuntimeError("boom")
        return TAP_MAC

    r.table._put(parse_binding(BINDING.replace(MAC, "aa:00:01:00:00:06"), source="tap6"))
    r.mac_of = mac_of
    from ganeti_ext.nfdhcpd.daemon import Daemon

    class FakeSender:
        sent: list = []

        def send(self, dev, frame):
            self.sent.append(dev)
            return True

    daemon = Daemon.__new__(Daemon)
    daemon.table, daemon.responder, daemon.sender = r.table, r, FakeSender()
    assert daemon.ra_round() == 1 and FakeSender.sent == ["tap6"]
