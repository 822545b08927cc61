"""Gratuitous ARP and unsolicited neighbour advertisements (frames built purely).

After a routed NIC comes up (first start or migration), the host tells the uplink that
the VM's addresses are now reached through it, so upstream neighbour caches move at
once instead of after their timeout.
"""

from __future__ import annotations

import ipaddress
import struct

from ganeti_ext import inet

BROADCAST = b"\xff" * 6
ALL_NODES_MAC = bytes.fromhex("333300000001")
ALL_NODES = ipaddress.IPv6Address("ff02::1")


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def garp_frame(mac: str, address: ipaddress.IPv4Address) -> bytes:
    """A broadcast gratuitous ARP request for `address` at `mac`."""
    ip = address.packed
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, _mac(mac), ip, b"\0" * 6, ip)
    return BROADCAST + _mac(mac) + b"\x08\x06" + arp


def unsolicited_na_frame(
    mac: str, address: ipaddress.IPv6Address, source: ipaddress.IPv6Address
) -> bytes:
    """An unsolicited, overriding NA for `address` at `mac`, to all nodes."""
    option = b"\x02\x01" + _mac(mac)  # target link-layer address
    body = struct.pack("!BBHI16s", 136, 0, 0, 0x20000000, address.packed) + option
    pseudo = source.packed + ALL_NODES.packed + struct.pack("!I3xB", len(body), 58)
    checksum = inet.checksum(pseudo + body)
    body = body[:2] + struct.pack("!H", checksum) + body[4:]
    header = struct.pack(
        "!IHBB16s16s", 0x60000000, len(body), 58, 255, source.packed, ALL_NODES.packed
    )
    return ALL_NODES_MAC + _mac(mac) + b"\x86\xdd" + header + body
