"""Fuzz nfdhcpd's queues from inside a client namespace (run by test_nfdhcpd.py).

usage: nfdhcpd_fuzz.py IFACE BOUND_MAC BOUND_IP COUNT

Sends COUNT frames that the NFDHCPD rules queue (IPv4 udp/67, ICMPv6 RS and NS, udp/547)
with malformed, truncated and random contents: scapy's fuzz() of DHCP/DHCPv6/ND
messages, truncations and byte flips of valid ones, and random payloads. Meanwhile it
reads everything coming back, and fails (exit 1) if any DHCPv4 answer hands out an
address other than the bound one or to another MAC.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import sys
import time

from scapy.all import (
    BOOTP,
    DHCP,
    IP,
    UDP,
    DHCP6_InfoRequest,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptIA_NA,
    Ether,
    ICMPv6ND_NS,
    ICMPv6ND_RS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    fuzz,
    raw,
)


def templates(mac: str) -> list[bytes]:
    """Valid-looking frames of each kind (the starting points for mutation)."""
    mb = bytes.fromhex(mac.replace(":", ""))
    eth4 = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    eth6 = Ether(src=mac, dst="33:33:00:00:00:02")
    ip4 = IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    ll = "fe80::a800:1ff:fe00:1"
    return [
        raw(eth4 / ip4 / BOOTP(chaddr=mb) / DHCP(options=[("message-type", "discover"), "end"])),
        raw(
            eth4
            / ip4
            / BOOTP(chaddr=mb)
            / DHCP(options=[("message-type", "request"), ("requested_addr", "198.51.100.9"), "end"])
        ),
        raw(eth6 / IPv6(src=ll, dst="ff02::2", hlim=255) / ICMPv6ND_RS()),
        raw(
            eth6
            / IPv6(src=ll, dst="ff02::1:ff00:1", hlim=255)
            / ICMPv6ND_NS(tgt="2001:db8:100::1")
            / ICMPv6NDOptSrcLLAddr(lladdr=mac)
        ),
        raw(
            eth6
            / IPv6(src=ll, dst="ff02::1:2")
            / UDP(sport=546, dport=547)
            / DHCP6_Solicit()
            / DHCP6OptClientId()
            / DHCP6OptIA_NA()
        ),
        raw(eth6 / IPv6(src=ll, dst="ff02::1:2") / UDP(sport=546, dport=547) / DHCP6_InfoRequest()),
    ]


def fuzzed(mac: str, count: int) -> list[bytes]:
    """scapy fuzz() of the message layers (fixed headers kept so the rules match)."""
    eth4 = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    eth6 = Ether(src=mac, dst="33:33:00:00:00:02")
    ip4 = IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
    udp6 = IPv6(src="fe80::1", dst="ff02::1:2") / UDP(sport=546, dport=547)
    makers = [
        lambda: eth4 / ip4 / fuzz(BOOTP()) / fuzz(DHCP()),
        lambda: eth4 / ip4 / fuzz(BOOTP(options=b"\x63\x82\x53\x63")),
        lambda: eth6 / IPv6(src="fe80::1", dst="ff02::2", hlim=255) / fuzz(ICMPv6ND_RS()),
        lambda: eth6 / IPv6(src="fe80::1", dst="ff02::2", hlim=255) / fuzz(ICMPv6ND_NS()),
        lambda: eth6 / udp6 / fuzz(DHCP6_Solicit()) / fuzz(DHCP6OptIA_NA()),
    ]
    out = []
    for i in range(count):
        try:
            out.append(raw(makers[i % len(makers)]()))
        except Exception:  # scapy cannot always serialise its own fuzz
            continue
    return out


def fix_lengths(frame: bytearray) -> None:
    """Make IP/UDP lengths match the frame, so the kernel hands it to the queue."""
    if frame[12:14] == b"\x08\x00" and len(frame) >= 42:
        ihl = (frame[14] & 0x0F) * 4 or 20
        struct.pack_into("!H", frame, 16, len(frame) - 14)
        struct.pack_into("!H", frame, 24, 0)
        csum = _checksum(bytes(frame[14 : 14 + ihl]))
        struct.pack_into("!H", frame, 24, csum)
        struct.pack_into("!H", frame, 14 + ihl + 4, len(frame) - 14 - ihl)
        struct.pack_into("!H", frame, 14 + ihl + 6, 0)  # no UDP checksum
    elif frame[12:14] == b"\x86\xdd" and len(frame) >= 54:
        struct.pack_into("!H", frame, 18, len(frame) - 54)
        if frame[20] == 17 and len(frame) >= 62:
            struct.pack_into("!H", frame, 58, len(frame) - 54)


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mutate(rng: random.Random, base: bytes) -> bytes:
    """Truncate, flip bytes or append junk past the headers that the rules match on."""
    head = 42 if base[12:14] == b"\x08\x00" else 62
    frame = bytearray(base)
    choice = rng.random()
    if choice < 0.35:
        frame = frame[: rng.randint(head - 4, len(frame))]
    elif choice < 0.7:
        for _ in range(rng.randint(1, 12)):
            pos = rng.randrange(min(head, len(frame) - 1), len(frame))
            frame[pos] = rng.randrange(256)
    elif choice < 0.85:
        frame = frame[:head] + bytearray(rng.randbytes(rng.randint(0, 600)))
    else:
        frame += rng.randbytes(rng.randint(1, 300))
    fix_lengths(frame)
    return bytes(frame)


def check_answer(frame: bytes, bound_mac: bytes, bound_ip: bytes) -> str | None:
    """Why `frame` is a wrong DHCPv4 answer, or None."""
    if frame[12:14] != b"\x08\x00" or len(frame) < 14 + 20 + 8 + 236:
        return None
    ihl = (frame[14] & 0x0F) * 4
    udp = 14 + ihl
    if frame[23] != 17 or frame[udp : udp + 2] != b"\x00\x43":
        return None
    bootp = udp + 8
    yiaddr = frame[bootp + 16 : bootp + 20]
    chaddr = frame[bootp + 28 : bootp + 34]
    if yiaddr not in (bound_ip, b"\0\0\0\0"):
        return f"answer hands out {socket.inet_ntoa(yiaddr)}"
    if chaddr != bound_mac:
        return f"answer to chaddr {chaddr.hex(':')}"
    return None


def main() -> int:
    iface, mac, ip, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = random.Random(4)
    bound_mac = bytes.fromhex(mac.replace(":", ""))
    bound_ip = socket.inet_aton(ip)
    send = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    send.bind((iface, 0))
    listen = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    listen.bind((iface, 0))
    listen.setblocking(False)
    bases = templates(mac)
    pool = fuzzed(mac, 3000)
    answers = wrong = sent = 0
    problems: list[str] = []
    started = time.monotonic()
    while sent < count:
        r = rng.random()
        if r < 0.3:
            frame = bytearray(rng.choice(pool))
            fix_lengths(frame)
            frame = bytes(frame)
        elif r < 0.95:
            frame = mutate(rng, rng.choice(bases))
        else:  # random junk behind a valid Ethernet/IP/UDP header
            frame = bytearray(rng.choice(bases)[:42] + rng.randbytes(rng.randint(0, 400)))
            fix_lengths(frame)
            frame = bytes(frame)
        try:
            send.send(frame)
        except OSError:
            continue  # e.g. a frame too short for the device: not counted
        sent += 1
        if sent % 200 == 0:
            time.sleep(0.004)  # keep the queue (4096) from overflowing
            while True:
                try:
                    got = listen.recv(4096)
                except BlockingIOError:
                    break
                if got[6:12] == bound_mac:
                    continue  # our own frame
                answers += 1
                why = check_answer(got, bound_mac, bound_ip)
                if why:
                    wrong += 1
                    problems.append(why)
    elapsed = time.monotonic() - started
    print(f"sent {sent} frames in {elapsed:.1f} s; {answers} answers, {wrong} wrong")
    for why in problems[:10]:
        print("WRONG:", why)
    return 1 if wrong else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
