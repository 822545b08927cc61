"""DHCPv6 (RFC 8415): stateless (Information-Request -> Reply with DNS servers and search
domains) and stateful (Solicit/Advertise/Request/Renew/Rebind/Confirm/Release/Decline ->
Reply) with the one address the binding allows: its EUI64 key, else the EUI-64 of its
MAC in a /64. Upstream nfdhcpd only ever answered Information-Request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct

from ganeti_ext.bindings import Binding
from ganeti_ext.nfdhcpd import ndp
from ganeti_ext.nfdhcpd.packets import (
    ETH_P_IPV6,
    IPPROTO_UDP,
    Malformed,
    ethernet,
    ipv6,
    link_local,
    parse_ipv6_udp,
    udp,
)

CLIENT_PORT, SERVER_PORT = 546, 547
SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE, DECLINE = range(1, 10)
INFORMATION_REQUEST = 11
NAMES = {
    SOLICIT: "SOLICIT",
    REQUEST: "REQUEST",
    CONFIRM: "CONFIRM",
    RENEW: "RENEW",
    REBIND: "REBIND",
    RELEASE: "RELEASE",
    DECLINE: "DECLINE",
    INFORMATION_REQUEST: "INFORMATION-REQUEST",
}
OPT_CLIENTID = 1
OPT_SERVERID = 2
OPT_IA_NA = 3
OPT_IAADDR = 5
OPT_ORO = 6
OPT_STATUS_CODE = 13
OPT_RAPID_COMMIT = 14
OPT_DNS_SERVERS = 23
OPT_DOMAIN_LIST = 24
STATUS_SUCCESS = 0
STATUS_NO_ADDRS_AVAIL = 2
STATUS_NOT_ON_LINK = 4
PREFERRED_LIFETIME = 604800
VALID_LIFETIME = 2592000


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    """A client's DHCPv6 message."""

    src: bytes  # IPv6 source (the client's link-local address)
    msg_type: int
    xid: bytes
    client_id: bytes | None
    server_id: bytes | None
    ia_na: tuple[tuple[int, tuple[bytes, ...]], ...]  # (IAID, addresses asked for)
    rapid_commit: bool

    @property
    def name(self) -> str:
        return NAMES.get(self.msg_type, str(self.msg_type))


def _options(data: bytes, start: int = 0):
    pos, end = start, len(data)
    while pos < end:
        if pos + 4 > end:
            raise Malformed("option header cut short")
        code, length = struct.unpack_from("!HH", data, pos)
        if pos + 4 + length > end:
            raise Malformed(f"option {code} runs past the message")
        yield code, data[pos + 4 : pos + 4 + length]
        pos += 4 + length


def parse_message(src: bytes, payload: bytes) -> Message:
    if len(payload) < 4:
        raise Malformed("shorter than a DHCPv6 header")
    kind = payload[0]
    if kind not in NAMES:
        raise Malformed(f"not a client message type: {kind}")
    client_id = server_id = None
    ias: list[tuple[int, tuple[bytes, ...]]] = []
    rapid = False
    for code, value in _options(payload, 4):
        if code == OPT_CLIENTID:
            if not 2 <= len(value) <= 130:
                raise Malformed("bad client DUID length")
            client_id = value
        elif code == OPT_SERVERID:
            server_id = value
        elif code == OPT_IA_NA:
            if len(value) < 12:
                raise Malformed("IA_NA too short")
            addresses = tuple(
                inner[:16]
                for sub, inner in _options(value, 12)
                if sub == OPT_IAADDR and len(inner) >= 24
            )
            ias.append((struct.unpack_from("!I", value)[0], addresses))
        elif code == OPT_RAPID_COMMIT:
            rapid = True
    if client_id is None and kind != INFORMATION_REQUEST:
        raise Malformed("no client identifier")
    return Message(src, kind, payload[1:4], client_id, server_id, tuple(ias), rapid)


def parse(packet: bytes) -> Message:
    """The DHCPv6 message in an IPv6/UDP packet; Malformed otherwise."""
    src, _dst, _sport, dport, payload = parse_ipv6_udp(packet)
    if dport != SERVER_PORT:
        raise Malformed("not to the DHCPv6 server port")
    return parse_message(src, payload)


def server_duid(tap_mac: bytes) -> bytes:
    """DUID-LL (type 3, Ethernet) of the tap: stable for the tap's lifetime."""
    return struct.pack("!HH", 3, 1) + tap_mac


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("!HH", code, len(value)) + value


def _status(code: int, text: str) -> bytes:
    return _opt(OPT_STATUS_CODE, struct.pack("!H", code) + text.encode("ascii"))


def _dns(settings: ndp.Settings) -> bytes:
    out = b""
    if settings.nameservers:
        out += _opt(OPT_DNS_SERVERS, b"".join(ns.packed for ns in settings.nameservers))
    if settings.domains:
        out += _opt(OPT_DOMAIN_LIST, b"".join(ndp._dns_name(d) for d in settings.domains))
    return out


def answer(msg: Message, binding: Binding, settings: ndp.Settings, tap_mac: bytes) -> bytes | None:
    """The DHCPv6 payload answering `msg`, or None when the message is not for us."""
    duid = server_duid(tap_mac)
    kind = msg.msg_type
    if kind in (REQUEST, RENEW, RELEASE, DECLINE) and msg.server_id != duid:
        return None  # meant for another server
    if kind in (SOLICIT, CONFIRM, REBIND) and msg.server_id is not None:
        return None  # RFC 8415 16: such messages must not carry a server id
    address = ndp.guest_address(binding)
    head = b""
    if msg.client_id is not None:
        head += _opt(OPT_CLIENTID, msg.client_id)
    head += _opt(OPT_SERVERID, duid)
    if kind == INFORMATION_REQUEST:
        return bytes((REPLY,)) + msg.xid + head + _dns(settings)
    if kind in (RELEASE, DECLINE):
        return bytes((REPLY,)) + msg.xid + head + _status(STATUS_SUCCESS, "ok")
    if kind == CONFIRM:
        subnet = binding.subnet6
        on_link = subnet is not None and all(
            ipaddress.IPv6Address(a) in subnet for _iaid, addrs in msg.ia_na for a in addrs
        )
        status = (
            _status(STATUS_SUCCESS, "on link") if on_link else _status(STATUS_NOT_ON_LINK, "no")
        )
        return bytes((REPLY,)) + msg.xid + head + status
    # SOLICIT, REQUEST, RENEW, REBIND: hand out the bound address in every IA_NA.
    body = b""
    for iaid, _asked in msg.ia_na:
        if address is None:
            inner = _status(STATUS_NO_ADDRS_AVAIL, "no address bound")
            body += _opt(OPT_IA_NA, struct.pack("!III", iaid, 0, 0) + inner)
            continue
        iaaddr = _opt(
            OPT_IAADDR, address.packed + struct.pack("!II", PREFERRED_LIFETIME, VALID_LIFETIME)
        )
        t1, t2 = PREFERRED_LIFETIME // 2, PREFERRED_LIFETIME * 4 // 5
        body += _opt(OPT_IA_NA, struct.pack("!III", iaid, t1, t2) + iaaddr)
    reply_type = ADVERTISE
    if kind != SOLICIT:
        reply_type = REPLY
    elif msg.rapid_commit:
        reply_type = REPLY
        body += _opt(OPT_RAPID_COMMIT, b"")
    return bytes((reply_type,)) + msg.xid + head + body + _dns(settings)


def build_frame(msg: Message, payload: bytes, tap_mac: bytes, client_mac: bytes) -> bytes:
    """The Ethernet frame carrying `payload` back to the client's link-local address."""
    packet = ipv6(
        link_local(tap_mac), msg.src, IPPROTO_UDP, udp(SERVER_PORT, CLIENT_PORT, payload), 255
    )
    return ethernet(client_mac, tap_mac, ETH_P_IPV6, packet)
