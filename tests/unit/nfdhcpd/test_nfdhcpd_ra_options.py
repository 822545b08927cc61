"""RA options byte for byte: RDNSS and DNSSL (RFC 8106), MTU and prefix information."""

from __future__ import annotations

import ipaddress

from ganeti_ext.bindings import parse_binding
from ganeti_ext.nfdhcpd import ndp

TAP_MAC = bytes.fromhex("020000000001")
BINDING = parse_binding(
    "MAC=aa:00:01:00:00:05\nHOSTNAME=vm\nSUBNET6=2001:db8:100::/64\nMTU=1400\n", source="tap5"
)


def options(frame: bytes) -> dict[int, bytes]:
    """The RA's options by type, each whole (type, length, body), from the raw frame."""
    body = frame[14 + 40 :]
    assert body[0] == ndp.ROUTER_ADVERTISEMENT
    found, pos = {}, 16
    while pos < len(body):
        length = body[pos + 1] * 8
        assert length, "zero-length option"
        found[body[pos]] = body[pos : pos + length]
        pos += length
    assert pos == len(body)
    return found


def ra(**settings) -> dict[int, bytes]:
    return options(ndp.router_advertisement(BINDING, ndp.Settings(**settings), TAP_MAC))


def test_dnssl_one_domain_exact_bytes():
    # RFC 8106 5.2: type 31, length in 8-octet units, 2 reserved bytes, lifetime, then the
    # names in DNS wire format (no compression), zero-padded to a multiple of 8 octets.
    got = ra(domains=("lab.test",), ra_period=300)[ndp.OPT_DNSSL]
    assert got == (
        b"\x1f\x03"  # type 31, 3 x 8 = 24 octets
        b"\x00\x00"  # reserved
        b"\x00\x00\x03\x84"  # lifetime 900 s (3 RA periods)
        b"\x03lab\x04test\x00"  # lab.test.
        b"\x00\x00\x00\x00\x00\x00"  # padding
    )


def test_dnssl_several_domains_ending_on_a_boundary_get_no_padding():
    got = ra(domains=("a.example", "example.org."), ra_period=100)[ndp.OPT_DNSSL]
    names = b"\x01a\x07example\x00" + b"\x07example\x03org\x00"  # 11 + 13 = 24 octets
    assert got == b"\x1f\x04\x00\x00\x00\x00\x01\x2c" + names  # 8 + 24 = 4 x 8


def test_rdnss_exact_bytes():
    got = ra(nameservers=(ipaddress.IPv6Address("2001:db8::53"),), ra_period=300)[ndp.OPT_RDNSS]
    assert got == b"\x19\x03\x00\x00\x00\x00\x03\x84" + ipaddress.IPv6Address("2001:db8::53").packed


def test_no_dns_settings_no_dns_options():
    got = ra()
    assert ndp.OPT_RDNSS not in got and ndp.OPT_DNSSL not in got
    assert got[ndp.OPT_MTU] == b"\x05\x01\x00\x00\x00\x00\x05\x78"  # MTU 1400
    assert got[ndp.OPT_SOURCE_LLADDR] == b"\x01\x01" + TAP_MAC
    prefix = got[ndp.OPT_PREFIX_INFO]
    assert prefix[:4] == b"\x03\x04\x40\xc0"  # /64, on-link + autonomous
    assert prefix[16:] == ipaddress.IPv6Address("2001:db8:100::").packed
