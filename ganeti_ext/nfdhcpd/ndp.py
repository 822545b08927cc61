"""IPv6 neighbour discovery (RFC 4861, 8106): router solicitations/advertisements and
neighbour solicitations/advertisements, parsed and built as bytes.

nfdhcpd acts as the guest's router: its RAs come from the tap's link-local address
(fe80:: + EUI-64 of the tap's MAC) and carry the binding's prefix, MTU and DNS settings;
it answers NS for that router address, for GATEWAY6 and, on routed taps, for every
other on-link address (proxy NDP), always with the tap's MAC.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

from ganeti_ext.bindings import Binding
from ganeti_ext.inet import eui64_address
from ganeti_ext.nfdhcpd.packets import (
    ETH_P_IPV6,
    IPPROTO_ICMPV6,
    Malformed,
    ethernet,
    ipv6,
    link_local,
    multicast_mac6,
    parse_ipv6,
)

ROUTER_SOLICITATION = 133
ROUTER_ADVERTISEMENT = 134
NEIGHBOR_SOLICITATION = 135
NEIGHBOR_ADVERTISEMENT = 136
OPT_SOURCE_LLADDR = 1
OPT_TARGET_LLADDR = 2
OPT_PREFIX_INFO = 3
OPT_MTU = 5
OPT_RDNSS = 25
OPT_DNSSL = 31
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
UNSPECIFIED = b"\0" * 16
MODES = ("auto", "slaac", "slaac+dhcpv6", "dhcpv6")

ROUTER_LIFETIME = 1800
PREFIX_VALID = 2592000
PREFIX_PREFERRED = 604800


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [ipv6] settings the answers depend on."""

    mode: str = "auto"
    ra_period: int = 300
    nameservers: tuple[ipaddress.IPv6Address, ...] = ()
    domains: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Icmp6:
    """An ICMPv6 ND message from a guest: the fields nfdhcpd acts on."""

    src: bytes
    dst: bytes
    type: int
    target: bytes | None  # NS only
    source_lladdr: bytes | None


def effective_mode(binding: Binding, settings: Settings) -> str:
    """slaac, slaac+dhcpv6 or dhcpv6 for this binding (auto: SLAAC needs a /64)."""
    if settings.mode != "auto":
        return settings.mode
    assert binding.subnet6 is not None
    return "slaac" if binding.subnet6.prefixlen == 64 else "dhcpv6"


def guest_address(binding: Binding) -> ipaddress.IPv6Address | None:
    """The guest's global address: EUI64 from the binding, else derived from its MAC
    (only in a /64, where EUI-64 is defined)."""
    if binding.eui64 is not None:
        return binding.eui64
    if binding.subnet6 is not None and binding.subnet6.prefixlen == 64:
        return eui64_address(binding.subnet6, binding.mac)
    return None


def parse(packet: bytes) -> Icmp6:
    """An RS or NS in an IPv6 packet (RFC 4861 validity checks); Malformed otherwise."""
    src, dst, next_header, hop_limit, body = parse_ipv6(packet)
    if next_header != IPPROTO_ICMPV6:
        raise Malformed("not ICMPv6 (or behind extension headers)")
    if hop_limit != 255:
        raise Malformed("hop limit is not 255 (off-link ND)")
    if len(body) < 8:
        raise Malformed("ICMPv6 message too short")
    kind, code = body[0], body[1]
    if code != 0:
        raise Malformed("ND code is not 0")
    target = None
    if kind == ROUTER_SOLICITATION:
        options_at = 8
    elif kind == NEIGHBOR_SOLICITATION:
        if len(body) < 24:
            raise Malformed("NS too short")
        target = body[8:24]
        if target[0] == 0xFF:
            raise Malformed("NS for a multicast target")
        options_at = 24
    else:
        raise Malformed(f"not RS/NS: ICMPv6 type {kind}")
    lladdr = None
    pos = options_at
    while pos < len(body):
        if pos + 2 > len(body):
            raise Malformed("option cut short")
        opt, units = body[pos], body[pos + 1]
        if units == 0 or pos + units * 8 > len(body):
            raise Malformed("bad option length")
        if opt == OPT_SOURCE_LLADDR and units == 1:
            lladdr = body[pos + 2 : pos + 8]
        pos += units * 8
    if src == UNSPECIFIED:
        lladdr = None  # RFC 4861 forbids it there; ignore rather than trust it
    return Icmp6(src=src, dst=dst, type=kind, target=target, source_lladdr=lladdr)


def _option(kind: int, body: bytes) -> bytes:
    """An ND option, padded to a multiple of 8 bytes."""
    total = 2 + len(body)
    padded = (total + 7) // 8 * 8
    return bytes((kind, padded // 8)) + body + b"\0" * (padded - total)


def _dns_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes((len(lbl),)) + lbl.encode("ascii")[:63] for lbl in labels) + b"\0"


def router_advertisement(binding: Binding, settings: Settings, tap_mac: bytes) -> bytes:
    """The whole RA frame for `binding`'s guest, sent to all-nodes out its tap."""
    if binding.subnet6 is None:
        raise ValueError(f"{binding.tap}: binding has no SUBNET6")
    mode = effective_mode(binding, settings)
    managed = mode == "dhcpv6"
    other = mode in ("dhcpv6", "slaac+dhcpv6")
    flags = (0x80 if managed else 0) | (0x40 if other else 0)
    # No default route on private networks, like DHCPv4's router option.
    lifetime = 0 if binding.private else ROUTER_LIFETIME
    body = struct.pack("!BBHBBHII", ROUTER_ADVERTISEMENT, 0, 0, 64, flags, lifetime, 0, 0)
    body += _option(OPT_SOURCE_LLADDR, tap_mac)
    if binding.mtu is not None and binding.mtu >= 1280:
        body += _option(OPT_MTU, struct.pack("!HI", 0, binding.mtu))
    prefix_flags = 0x80 | (0x40 if not managed else 0)  # on-link, autonomous
    subnet = binding.subnet6
    body += _option(
        OPT_PREFIX_INFO,
        struct.pack(
            "!BBIII16s",
            subnet.prefixlen,
            prefix_flags,
            PREFIX_VALID,
            PREFIX_PREFERRED,
            0,
            subnet.network_address.packed,
        ),
    )
    rdnss_lifetime = 3 * settings.ra_period
    if settings.nameservers:
        servers = b"".join(ns.packed for ns in settings.nameservers)
        body += _option(OPT_RDNSS, struct.pack("!HI", 0, rdnss_lifetime) + servers)
    if settings.domains:
        names = b"".join(_dns_name(d) for d in settings.domains)
        body += _option(OPT_DNSSL, struct.pack("!HI", 0, rdnss_lifetime) + names)
    src = link_local(tap_mac)
    packet = ipv6(src, ALL_NODES, IPPROTO_ICMPV6, body, hop_limit=255)
    return ethernet(multicast_mac6(ALL_NODES), tap_mac, ETH_P_IPV6, packet)


def answers_for(binding: Binding, tap_mac: bytes, routed: bool, target: bytes) -> bool:
    """Whether nfdhcpd answers an NS from this guest for `target`."""
    if target == link_local(tap_mac):
        return True
    if binding.gateway6 is not None and target == binding.gateway6.packed:
        return True
    if not routed or binding.subnet6 is None:
        return False
    address = ipaddress.IPv6Address(target)
    if address not in binding.subnet6:
        return False
    own = guest_address(binding)
    return own is None or address != own


def neighbor_advertisement(ns: Icmp6, tap_mac: bytes, client_mac: bytes) -> bytes:
    """The NA frame answering `ns` with the tap's MAC (router flag set)."""
    assert ns.target is not None
    solicited = ns.src != UNSPECIFIED
    flags = 0x80000000 | (0x40000000 if solicited else 0) | 0x20000000
    body = struct.pack("!BBHI", NEIGHBOR_ADVERTISEMENT, 0, 0, flags) + ns.target
    body += _option(OPT_TARGET_LLADDR, tap_mac)
    if solicited:
        dst, dst_mac = ns.src, ns.source_lladdr or client_mac
    else:
        dst, dst_mac = ALL_NODES, multicast_mac6(ALL_NODES)
    packet = ipv6(ns.target, dst, IPPROTO_ICMPV6, body, hop_limit=255)
    return ethernet(dst_mac, tap_mac, ETH_P_IPV6, packet)
