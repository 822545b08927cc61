"""Binding files: parse, format, atomic write, remove."""

from __future__ import annotations

import ipaddress
import os

import pytest

from ganeti_ext.bindings import (
    Binding,
    BindingError,
    format_binding,
    is_binding_name,
    parse_binding,
    read_binding,
    remove_binding,
    write_binding,
)
from ganeti_ext.inet import eui64_address

UPSTREAM_STYLE = """\
INDEV=br0
IP=198.51.100.20
MAC=AA:00:01:2B:3C:4D
HOSTNAME=vm1.example.org
TAGS="nfdhcpd ip-less-routed"
GATEWAY=198.51.100.1
SUBNET=198.51.100.0/24
GATEWAY6=2001:db8:100::1
SUBNET6=2001:db8:100::/64
EUI64=2001:db8:100:0:a800:1ff:fe2b:3c4d
"""
M = "MAC=aa:00:01:00:00:01\nHOSTNAME=vm\n"


def test_parse_upstream_style_file():
    b = parse_binding(UPSTREAM_STYLE, source="/var/lib/nfdhcpd/tap3")
    assert b.tap == "tap3"
    assert b.indev == "br0"
    assert b.mac == "aa:00:01:2b:3c:4d"
    assert b.mac_bytes == bytes.fromhex("aa00012b3c4d")
    assert b.hostname == "vm1.example.org"
    assert b.ip == ipaddress.IPv4Address("198.51.100.20")
    assert b.tags == ("nfdhcpd", "ip-less-routed")
    assert b.subnet == ipaddress.IPv4Network("198.51.100.0/24")
    assert b.gateway6 == ipaddress.IPv6Address("2001:db8:100::1")
    assert b.eui64 == eui64_address(b.subnet6, b.mac)
    assert not b.private and not b.macspoof and b.mtu is None
    assert b.has_ipv4 and b.has_ipv6


def test_minimal_binding_needs_only_mac_and_hostname():
    b = parse_binding("MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nIP=\n", source="tap0")
    assert b.ip is None and b.subnet6 is None and not b.has_ipv4 and not b.has_ipv6


def test_roundtrip_through_format():
    b = parse_binding(UPSTREAM_STYLE + "PRIVATE=yes\nMTU=1400\nMACSPOOF=1\n", source="tap3")
    again = parse_binding(format_binding(b), source="tap3")
    assert again == b
    assert again.private and again.macspoof and again.mtu == 1400


def test_unknown_keys_and_comments_are_tolerated():
    text = "# written by snf-network\nMAC=aa:00:01:00:00:01\nHOSTNAME=vm\nLINK=br0\n"
    b = parse_binding(text, source="tap0")
    assert b.extra == (("LINK", "br0"),)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        pytest.param("HOSTNAME=vm\n", "MAC", id="missing-mac"),
        pytest.param("MAC=aa:00:01:00:00:01\n", "HOSTNAME", id="missing-hostname"),
        pytest.param("MAC=zz:00:01:00:00:01\nHOSTNAME=vm\n", "MAC", id="bad-mac"),
        pytest.param("MAC=aa:00:01:00:00:01\nHOSTNAME=a b\n", "HOSTNAME", id="bad-hostname"),
        pytest.param("MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nIP=300.1.1.1\n", "IP", id="bad-ip"),
        pytest.param(
            "MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nIP=10.0.0.1\nSUBNET=198.51.100.0/24\n",
            "IP",
            id="ip-outside-subnet",
        ),
        pytest.param(
            "MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nSUBNET6=nope\n", "SUBNET6", id="bad-net6"
        ),
        pytest.param("MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nMTU=big\n", "MTU", id="bad-mtu"),
        pytest.param("MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nMTU=20\n", "MTU", id="tiny-mtu"),
        pytest.param("MAC=aa:00:01:00:00:01\nHOSTNAME=vm\nPRIVATE=maybe\n", "PRIVATE", id="bool"),
        pytest.param(
            "MAC=aa:00:01:00:00:01\nMAC=aa:00:01:00:00:02\nHOSTNAME=vm\n", "MAC", id="dup"
        ),
    ],
)
def test_errors_name_file_and_key(text, key):
    with pytest.raises(BindingError) as info:
        parse_binding(text, source="/var/lib/nfdhcpd/tap7")
    assert info.value.key == key
    assert str(info.value).startswith(f"/var/lib/nfdhcpd/tap7: {key}: ")


def test_garbage_line_is_an_error():
    with pytest.raises(BindingError, match="line 2: not KEY=value"):
        parse_binding("MAC=aa:00:01:00:00:01\n\x00\x01garbage\nHOSTNAME=vm\n", source="tap0")


def test_constructing_an_invalid_binding_fails():
    with pytest.raises(BindingError):
        Binding(tap="../etc", mac="aa:00:01:00:00:01", hostname="vm")


def test_eui64():
    net = ipaddress.IPv6Network("2001:db8:100::/64")
    assert str(eui64_address(net, "aa:00:01:2b:3c:4d")) == "2001:db8:100:0:a800:1ff:fe2b:3c4d"


def test_write_is_atomic_and_readable(tmp_path):
    b = parse_binding(UPSTREAM_STYLE, source="tap3")
    path = write_binding(tmp_path, b)
    assert path == tmp_path / "tap3"
    assert os.listdir(tmp_path) == ["tap3"]  # no temporary left behind
    assert read_binding(path) == b
    changed = Binding(tap="tap3", mac=b.mac, hostname="renamed")
    write_binding(tmp_path, changed)
    assert read_binding(path) == changed
    assert remove_binding(tmp_path, "tap3") is True
    assert remove_binding(tmp_path, "tap3") is False
    with pytest.raises(BindingError):
        remove_binding(tmp_path, "../x")


def test_read_rejects_binary_and_huge(tmp_path):
    (tmp_path / "tap1").write_bytes(b"\xff\xfe")
    with pytest.raises(BindingError, match="UTF-8"):
        read_binding(tmp_path / "tap1")
    (tmp_path / "tap2").write_text("#" * 70000)
    with pytest.raises(BindingError, match="larger"):
        read_binding(tmp_path / "tap2")


@pytest.mark.parametrize(
    ("name", "ok"), [("tap0", True), (".tap0.1.tmp", False), ("a/b", False), ("x" * 16, False)]
)
def test_is_binding_name(name, ok):
    assert is_binding_name(name) is ok


def test_written_binding_is_world_readable_whatever_the_umask(tmp_path):
    # Ganeti runs NIC scripts with umask 077; nfdhcpd reads bindings as an unprivileged user.
    old = os.umask(0o077)
    try:
        path = write_binding(tmp_path, Binding(tap="tap9", mac="aa:00:01:00:00:09", hostname="vm9"))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
