"""Address arithmetic every network component shares: modified EUI-64 and the Internet
checksum (pure; one implementation each)."""

from __future__ import annotations

import ipaddress
import struct

_LITTLE = struct.pack("=H", 1) == b"\x01\x00"


def eui64_iid(mac: bytes) -> bytes:
    """The modified EUI-64 interface identifier (RFC 4291, appendix A) of a 6-byte MAC."""
    return bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]


def eui64_address(subnet6: ipaddress.IPv6Network, mac: str) -> ipaddress.IPv6Address:
    """The SLAAC address of `mac` (aa:bb:cc:dd:ee:ff) in a /64 (or shorter) prefix."""
    iid = eui64_iid(bytes.fromhex(mac.replace(":", "")))
    return ipaddress.IPv6Address(int(subnet6.network_address) | int.from_bytes(iid, "big"))


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(memoryview(data).cast("H"))
    # The sum was taken in host order; fold, then swap to network order if needed.
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    total = ~total & 0xFFFF
    return int.from_bytes(total.to_bytes(2, "little"), "big") if _LITTLE else total
