"""nfdhcpd.conf: defaults, derived protocol settings, and errors that name file and key."""

from __future__ import annotations

import ipaddress

import pytest

from ganeti_ext.errors import ConfigError
from ganeti_ext.nfdhcpd import config

SOURCE = "/etc/nfdhcpd/nfdhcpd.conf"


def test_empty_file_gives_the_documented_defaults():
    cfg = config.loads("", SOURCE)
    assert cfg.queues == {"dhcpv4": 42, "rs": 43, "ns": 44, "dhcpv6": 45}
    assert cfg.dhcp is not None and cfg.dhcp.lease_lifetime == 604800
    assert cfg.ipv6 is not None and cfg.ipv6.mode == "auto" and cfg.ipv6.ra_period == 300
    assert str(cfg.raw.general.datapath) == "/var/lib/nfdhcpd"


def test_settings_are_derived_and_checked():
    cfg = config.loads(
        "[dhcp]\nserver_ip = 198.51.100.1\nnameservers = 198.51.100.53, 198.51.100.54\n"
        "domain = lab.test.\n[ipv6]\nmode = dhcpv6\nnameservers = 2001:db8::53\n"
        "domains = lab.test example.org\ndhcpv6_queue = 145\n",
        SOURCE,
    )
    assert cfg.dhcp.server_ip == ipaddress.IPv4Address("198.51.100.1")
    assert [str(n) for n in cfg.dhcp.nameservers] == ["198.51.100.53", "198.51.100.54"]
    assert cfg.dhcp.domain == "lab.test"  # the trailing dot goes
    assert cfg.ipv6.mode == "dhcpv6" and cfg.ipv6.domains == ("lab.test", "example.org")
    assert cfg.queues["dhcpv6"] == 145


def test_disabled_protocols_bind_no_queue():
    cfg = config.loads("[dhcp]\nenable_dhcp = no\n[ipv6]\nenable_ipv6 = no\n", SOURCE)
    assert cfg.dhcp is None and cfg.ipv6 is None and cfg.queues == {}
    only_v4 = config.loads("[ipv6]\nenable_ipv6 = no\n[dhcp]\ndhcp_queue = 142\n", SOURCE)
    assert only_v4.queues == {"dhcpv4": 142}


@pytest.mark.parametrize(
    ("text", "section", "key"),
    [
        ("[dhcp]\nserver_ip = 198.51.100.300\n", "dhcp", "server_ip"),
        ("[dhcp]\nnameservers = 2001:db8::53\n", "dhcp", "nameservers"),
        ("[dhcp]\ndomain = not_a domain\n", "dhcp", "domain"),
        ("[dhcp]\nlease_lifetime = 10\n", "dhcp", "lease_lifetime"),
        ("[dhcp]\nlease_lifetime = 600\nlease_renewal = 700\n", "dhcp", "lease_renewal"),
        ("[dhcp]\ndhcp_queue = 70000\n", "dhcp", "dhcp_queue"),
        ("[dhcp]\nenable_dhcp = perhaps\n", "dhcp", "enable_dhcp"),
        ("[ipv6]\nmode = stateful\n", "ipv6", "mode"),
        ("[ipv6]\nra_period = 1\n", "ipv6", "ra_period"),
        ("[ipv6]\nnameservers = 198.51.100.53\n", "ipv6", "nameservers"),
        ("[ipv6]\ndomains = lab.test bad..name\n", "ipv6", "domains"),
        ("[ipv6]\nrs_queue = 42\n", "ipv6", "rs_queue"),  # same as dhcp_queue
        ("[general]\nlogfile = /tmp/x\n", "general", "logfile"),
    ],
    ids=lambda v: v if isinstance(v, str) and "\n" not in v else None,
)
def test_bad_value_names_file_section_and_key(text, section, key):
    with pytest.raises(ConfigError) as err:
        config.loads(text, SOURCE)
    assert (err.value.file, err.value.section, err.value.key) == (SOURCE, section, key)
    assert str(err.value).startswith(f"{SOURCE}: [{section}] {key}: ")


def test_unknown_section_and_broken_file_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"\[dchp\]") as err:
        config.loads("[dchp]\n", SOURCE)
    assert err.value.file == SOURCE
    broken = tmp_path / "nfdhcpd.conf"
    broken.write_text("domain = lab.test\n")  # a key outside any section
    with pytest.raises(ConfigError) as err:
        config.load(broken)
    assert err.value.file == str(broken) and str(err.value).startswith(str(broken))


def test_missing_file_means_defaults(tmp_path):
    assert config.load(tmp_path / "absent.conf").queues["dhcpv4"] == 42


def test_load_reads_the_file(tmp_path):
    path = tmp_path / "nfdhcpd.conf"
    path.write_text("[general]\nuser =\ndatapath = /srv/bindings\n[ipv6]\nra_period = 30\n")
    cfg = config.load(path)
    assert cfg.raw.general.user == "" and str(cfg.raw.general.datapath) == "/srv/bindings"
    assert cfg.ipv6.ra_period == 30
