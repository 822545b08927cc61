"""Address arithmetic every network component shares: modified EUI-64 and the Internet
checksum (pure; one implementation each)."""

from __future__ import annotations

import ipaddress
import re
import struct

_LITTLE = struct.pack("=H", 1) == b"\x01\x00"

# A MAC as Ganeti writes it (lower-case, colon-separated), a network's 3-octet MAC prefix,
# and a Linux interface name (at most 15 bytes; not "." or "..": those are paths).
MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}\Z")
MAC_PREFIX = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){2}\Z")
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}\Z")


def is_ifname(name: str) -> bool:
    """Whether `name` can be a Linux network interface's name (and so a file name)."""
    return bool(_IFNAME.match(name)) and name not in (".", "..")


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
