"""Lean building and parsing of Ethernet, IPv4/UDP and IPv6 headers (the hot path).

NFQUEUE hands us the packet from its network header on; replies go out raw on the tap,
so they are whole Ethernet frames. Everything here works on bytes: no scapy on the
per-packet path.
"""

from __future__ import annotations

import struct

from ganeti_ext.inet import checksum, eui64_iid

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
IPPROTO_UDP = 17
IPPROTO_ICMPV6 = 58
BROADCAST_MAC = b"\xff" * 6
ZERO4 = b"\0" * 4
BROADCAST4 = b"\xff" * 4

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_IPV6 = struct.Struct("!IHBB16s16s")


class Malformed(ValueError):
    """A packet that cannot be what it claims to be; never answered."""


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def ipv4_udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 header plus UDP header around `payload` (UDP checksum filled in)."""
    udp_len = 8 + len(payload)
    pseudo = src + dst + struct.pack("!BBH", 0, IPPROTO_UDP, udp_len)
    udp = _UDP.pack(sport, dport, udp_len, 0) + payload
    csum = checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + struct.pack("!H", csum) + udp[8:]
    header = _IPV4.pack(0x45, 0x10, 20 + udp_len, 0, 0, 64, IPPROTO_UDP, 0, src, dst)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + udp


def parse_ipv4_udp(packet: bytes) -> tuple[bytes, bytes, int, int, bytes]:
    """(src, dst, sport, dport, payload) of an IPv4/UDP packet; Malformed otherwise."""
    if len(packet) < 28:
        raise Malformed("shorter than IPv4 + UDP headers")
    first, _tos, total, _id, frag, _ttl, proto, _csum, src, dst = _IPV4.unpack_from(packet)
    if first >> 4 != 4:
        raise Malformed("not IPv4")
    ihl = (first & 0x0F) * 4
    if ihl < 20 or proto != IPPROTO_UDP:
        raise Malformed("not a plain UDP datagram")
    if frag & 0x3FFF:
        raise Malformed("fragment")
    if total > len(packet) or total < ihl + 8:
        raise Malformed("bad IPv4 total length")
    sport, dport, udp_len, _ = _UDP.unpack_from(packet, ihl)
    if udp_len < 8 or ihl + udp_len > total:
        raise Malformed("bad UDP length")
    return src, dst, sport, dport, packet[ihl + 8 : ihl + udp_len]


def ipv6(src: bytes, dst: bytes, next_header: int, payload: bytes, hop_limit: int = 64) -> bytes:
    """An IPv6 packet; the upper-layer checksum (UDP or ICMPv6) at its usual offset is
    computed over the pseudo-header."""
    length = len(payload)
    pseudo = src + dst + struct.pack("!IxxxB", length, next_header)
    offset = 6 if next_header == IPPROTO_UDP else 2
    payload = payload[:offset] + b"\0\0" + payload[offset + 2 :]
    csum = checksum(pseudo + payload)
    if next_header == IPPROTO_UDP and csum == 0:
        csum = 0xFFFF
    payload = payload[:offset] + struct.pack("!H", csum) + payload[offset + 2 :]
    return _IPV6.pack(6 << 28, length, next_header, hop_limit, src, dst) + payload


def parse_ipv6(packet: bytes) -> tuple[bytes, bytes, int, int, bytes]:
    """(src, dst, next_header, hop_limit, payload) of an IPv6 packet without extension
    headers; Malformed otherwise."""
    if len(packet) < 40:
        raise Malformed("shorter than an IPv6 header")
    first, length, next_header, hop_limit, src, dst = _IPV6.unpack_from(packet)
    if first >> 28 != 6:
        raise Malformed("not IPv6")
    if 40 + length > len(packet):
        raise Malformed("bad IPv6 payload length")
    return src, dst, next_header, hop_limit, packet[40 : 40 + length]


def parse_ipv6_udp(packet: bytes) -> tuple[bytes, bytes, int, int, bytes]:
    src, dst, next_header, _hop, payload = parse_ipv6(packet)
    if next_header != IPPROTO_UDP or len(payload) < 8:
        raise Malformed("not a plain UDP datagram")
    sport, dport, udp_len, _ = _UDP.unpack_from(payload)
    if udp_len < 8 or udp_len > len(payload):
        raise Malformed("bad UDP length")
    return src, dst, sport, dport, payload[8:udp_len]


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header (checksum left zero, for ipv6() to fill) and payload."""
    return _UDP.pack(sport, dport, 8 + len(payload), 0) + payload


def multicast_mac6(address: bytes) -> bytes:
    """The Ethernet address an IPv6 multicast address maps to (33:33 + low 32 bits)."""
    return b"\x33\x33" + address[12:]


def link_local(mac: bytes) -> bytes:
    """fe80::/64 modified EUI-64 address of `mac`."""
    return b"\xfe\x80" + b"\0" * 6 + eui64_iid(mac)


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)
