"""DHCPv4 (RFC 2131/2132): parse a BOOTP request, decide the answer from a binding, build it.

Everything is pure: `parse` turns the UDP payload into a `Request` (or raises Malformed,
for anything truncated, inconsistent or without a DHCP message type: upstream crashed on
those), `decide` picks the reply for a binding and records the lease state, and
`build_frame` returns the whole Ethernet frame to send out the tap.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import struct
import time
from collections.abc import Sequence

from ganeti_ext.bindings import Binding
from ganeti_ext.nfdhcpd.packets import (
    BROADCAST4,
    BROADCAST_MAC,
    ETH_P_IP,
    ZERO4,
    Malformed,
    ethernet,
    ipv4_udp,
)

SERVER_PORT = 67
CLIENT_PORT = 68
BOOTREQUEST, BOOTREPLY = 1, 2
MAGIC = b"\x63\x82\x53\x63"
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MESSAGE_NAMES = {
    DISCOVER: "DISCOVER",
    OFFER: "OFFER",
    REQUEST: "REQUEST",
    DECLINE: "DECLINE",
    ACK: "ACK",
    NAK: "NAK",
    RELEASE: "RELEASE",
    INFORM: "INFORM",
}
# Options (RFC 2132, 3442)
OPT_PAD, OPT_END = 0, 255
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_DOMAIN = 15
OPT_MTU = 26
OPT_BROADCAST = 28
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_OVERLOAD = 52
OPT_MESSAGE_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAMS = 55
OPT_MESSAGE = 56
OPT_RENEWAL = 58
OPT_REBINDING = 59
OPT_CLIENT_ID = 61
OPT_CLASSLESS_ROUTES = 121
BROADCAST_FLAG = 0x8000
MIN_BOOTP = 300  # some clients drop shorter replies (RFC 1542)

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s")  # up to chaddr; sname+file follow
_FIXED = 236


@dataclasses.dataclass(frozen=True, slots=True)
class Request:
    """A client's DHCP message: the fields and options nfdhcpd acts on."""

    xid: int
    flags: int
    ciaddr: bytes
    giaddr: bytes
    chaddr: bytes  # the 6-byte hardware address
    msg_type: int
    requested_ip: bytes | None = None
    server_id: bytes | None = None
    params: bytes = b""
    client_id: bytes | None = None

    @property
    def name(self) -> str:
        return MESSAGE_NAMES.get(self.msg_type, str(self.msg_type))


def parse(payload: bytes) -> Request:
    """The DHCP request in a UDP payload; Malformed if it is not one we can answer."""
    if len(payload) < _FIXED + 4:
        raise Malformed("shorter than a BOOTP header")
    op, htype, hlen, _hops, xid, _secs, flags, ciaddr, _yi, _si, giaddr, chaddr = (
        _HEADER.unpack_from(payload)
    )
    if op != BOOTREQUEST:
        raise Malformed("not a BOOTREQUEST")
    if htype != 1 or hlen != 6:
        raise Malformed("hardware type is not Ethernet")
    if payload[_FIXED : _FIXED + 4] != MAGIC:
        raise Malformed("no DHCP magic cookie (plain BOOTP)")
    options: dict[int, bytes] = {}
    data = payload
    pos, end = _FIXED + 4, len(payload)
    while pos < end:
        code = data[pos]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            pos += 1
            continue
        if pos + 1 >= end:
            raise Malformed("option header cut short")
        length = data[pos + 1]
        if pos + 2 + length > end:
            raise Malformed(f"option {code} runs past the packet")
        value = data[pos + 2 : pos + 2 + length]
        # RFC 3396: a repeated option is concatenated.
        options[code] = options[code] + value if code in options else value
        pos += 2 + length
    kind = options.get(OPT_MESSAGE_TYPE)
    if kind is None or len(kind) != 1:
        raise Malformed("no DHCP message type")
    msg_type = kind[0]
    if msg_type not in (DISCOVER, REQUEST, DECLINE, RELEASE, INFORM):
        raise Malformed(f"not a client message type: {msg_type}")
    requested = options.get(OPT_REQUESTED_IP)
    if requested is not None and len(requested) != 4:
        raise Malformed("requested address is not 4 bytes")
    server_id = options.get(OPT_SERVER_ID)
    if server_id is not None and len(server_id) != 4:
        raise Malformed("server identifier is not 4 bytes")
    return Request(
        xid=xid,
        flags=flags,
        ciaddr=ciaddr,
        giaddr=giaddr,
        chaddr=chaddr[:6],
        msg_type=msg_type,
        requested_ip=requested,
        server_id=server_id,
        params=options.get(OPT_PARAMS, b""),
        client_id=options.get(OPT_CLIENT_ID),
    )


@dataclasses.dataclass(frozen=True)
class Settings:
    """The [dhcp] settings the answers depend on."""

    lease_lifetime: int = 604800
    lease_renewal: int = 600
    server_ip: ipaddress.IPv4Address | None = None
    server_on_link: bool = False
    nameservers: tuple[ipaddress.IPv4Address, ...] = ()
    domain: str = ""


@dataclasses.dataclass
class Lease:
    """What a guest was last told (kept per tap; SIGUSR1 dumps it)."""

    mac: str
    ip: str
    state: str  # offered, bound, released, declined, nak
    updated: float
    expires: float


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    msg_type: int  # OFFER, ACK or NAK
    yiaddr: bytes
    server_id: bytes
    options: tuple[tuple[int, bytes], ...]


def server_address(binding: Binding, settings: Settings) -> bytes | None:
    """The address nfdhcpd answers from: server_ip, else the binding's gateway, else the
    first host of the binding's subnet that is not the guest's own address."""
    if settings.server_ip is not None:
        return settings.server_ip.packed
    if binding.gateway is not None:
        return binding.gateway.packed
    if binding.subnet is not None and binding.ip is not None:
        for host in (binding.subnet.network_address + 1, binding.subnet.network_address + 2):
            if host != binding.ip and host in binding.subnet:
                return host.packed
    return None


def _options(binding: Binding, settings: Settings, server_id: bytes, with_lease: bool):
    opts: list[tuple[int, bytes]] = []
    subnet = binding.subnet
    if subnet is not None:
        opts.append((OPT_SUBNET_MASK, subnet.netmask.packed))
        opts.append((OPT_BROADCAST, subnet.broadcast_address.packed))
    router = binding.gateway if binding.gateway is not None and not binding.private else None
    if router is not None:
        opts.append((OPT_ROUTER, router.packed))
    if settings.server_on_link and settings.server_ip is not None:
        # RFC 3442: a client that takes option 121 ignores option 3, so repeat the
        # default route there.
        routes = b"\x20" + settings.server_ip.packed + ZERO4
        if router is not None:
            routes += b"\x00" + router.packed
        opts.append((OPT_CLASSLESS_ROUTES, routes))
    if settings.nameservers:
        opts.append((OPT_DNS, b"".join(ns.packed for ns in settings.nameservers)))
    hostname = binding.hostname.rstrip(".")
    if settings.domain and hostname.endswith("." + settings.domain):
        hostname = hostname[: -len(settings.domain) - 1]
    opts.append((OPT_HOSTNAME, hostname.encode("ascii")[:255]))
    if settings.domain:
        opts.append((OPT_DOMAIN, settings.domain.encode("ascii")[:255]))
    if binding.mtu is not None:
        opts.append((OPT_MTU, struct.pack("!H", max(binding.mtu, 68))))
    if with_lease:
        lease = settings.lease_lifetime
        renewal = min(settings.lease_renewal, lease)
        rebinding = max(renewal, lease * 7 // 8)
        opts.append((OPT_LEASE_TIME, struct.pack("!I", lease)))
        opts.append((OPT_RENEWAL, struct.pack("!I", renewal)))
        opts.append((OPT_REBINDING, struct.pack("!I", rebinding)))
    return tuple(opts)


def decide(
    request: Request,
    binding: Binding,
    settings: Settings,
    leases: dict[str, Lease] | None = None,
    now: float | None = None,
) -> Answer | None:
    """The answer to `request` from the guest bound by `binding`, or None (no answer).

    The caller has already checked that the request may speak for this binding (chaddr).
    `leases` (per tap) is updated with what the guest was told.
    """
    if binding.ip is None:
        return None
    server_id = server_address(binding, settings)
    if server_id is None:
        return None
    now = time.time() if now is None else now
    bound = binding.ip.packed
    kind = request.msg_type

    def record(state: str) -> None:
        if leases is not None:
            leases[binding.tap] = Lease(
                binding.mac, str(binding.ip), state, now, now + settings.lease_lifetime
            )

    if kind == DISCOVER:
        record("offered")
        return Answer(OFFER, bound, server_id, _options(binding, settings, server_id, True))
    if kind == INFORM:
        return Answer(ACK, ZERO4, server_id, _options(binding, settings, server_id, False))
    if kind == REQUEST:
        if request.server_id is not None and request.server_id != server_id:
            return None  # SELECTING another server's offer: stay quiet
        wanted = request.requested_ip or (request.ciaddr if request.ciaddr != ZERO4 else None)
        if wanted != bound:
            record("nak")
            return Answer(NAK, ZERO4, server_id, ())
        record("bound")
        return Answer(ACK, bound, server_id, _options(binding, settings, server_id, True))
    if kind == RELEASE:
        record("released")
        return None
    if kind == DECLINE:
        # The guest saw the bound address in use: nothing else to offer, but keep a trace.
        record("declined")
        return None
    return None


def build(request: Request, answer: Answer) -> bytes:
    """The BOOTREPLY payload for `answer`."""
    ciaddr = request.ciaddr if answer.msg_type == ACK else ZERO4
    header = _HEADER.pack(
        BOOTREPLY,
        1,
        6,
        0,
        request.xid,
        0,
        request.flags,
        ciaddr,
        answer.yiaddr,
        ZERO4,
        request.giaddr,
        request.chaddr.ljust(16, b"\0"),
    )
    parts = [header, b"\0" * 192, MAGIC, bytes((OPT_MESSAGE_TYPE, 1, answer.msg_type))]
    parts.append(bytes((OPT_SERVER_ID, 4)) + answer.server_id)
    for code, value in _ordered(answer.options, request.params):
        parts.append(bytes((code, len(value))) + value)
    parts.append(b"\xff")
    payload = b"".join(parts)
    return payload.ljust(MIN_BOOTP, b"\0")


def _ordered(options: Sequence[tuple[int, bytes]], params: bytes):
    # Requested options first, in the client's order (RFC 2132 9.8), then the rest.
    if not params:
        return options
    rank = {code: i for i, code in enumerate(params)}
    return sorted(options, key=lambda item: rank.get(item[0], 256))


def build_frame(
    request: Request, answer: Answer, server_mac: bytes, client_l2: bytes | None
) -> bytes:
    """The Ethernet frame carrying the reply, addressed per RFC 2131 4.1."""
    payload = build(request, answer)
    src = answer.server_id
    client_mac = client_l2 or request.chaddr
    if request.giaddr != ZERO4:
        dst_ip, dst_mac, port = request.giaddr, client_mac, SERVER_PORT
    elif answer.msg_type == NAK or request.flags & BROADCAST_FLAG:
        dst_ip, dst_mac, port = BROADCAST4, BROADCAST_MAC, CLIENT_PORT
    elif request.ciaddr != ZERO4:
        dst_ip, dst_mac, port = request.ciaddr, request.chaddr, CLIENT_PORT
    else:
        dst_ip, dst_mac, port = answer.yiaddr, request.chaddr, CLIENT_PORT
    packet = ipv4_udp(src, dst_ip, SERVER_PORT, port, payload)
    return ethernet(dst_mac, server_mac, ETH_P_IP, packet)
