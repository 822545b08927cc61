import ipaddress

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import hooks as hook_env
from ganeti_ext.errors import CommandError
from ganeti_ext.hooks import neighbours
from ganeti_ext.inet import eui64_address
from ganeti_ext.network.host import Host
from ganeti_ext.runner import CompletedCommand

SHOW4 = "198.51.100.20 dev br0 proxy\n198.51.100.99 dev br0 proxy\n"
SHOW6 = (
    "2001:db8:100:0:a800:1ff:fe3c:5e7f dev br0 proxy\n"
    "2001:db8:100::99 dev br0 proxy\n"
    "garbage line\n"
)


class FakeIp:
    def __init__(self, show4=SHOW4, show6=SHOW6, fail=()):
        self.show = {"-4": show4, "-6": show6}
        self.fail = fail
        self.calls = []

    def run(self, argv, *, timeout, input=None, env=None, check=True):
        assert argv[0] == "ip" and timeout <= 1
        self.calls.append(list(argv))
        if argv[3] in self.fail:
            raise CommandError(argv, 2, "RTNETLINK answers: No such file or directory")
        out = self.show[argv[1]] if argv[3] == "show" else ""
        return CompletedCommand(tuple(argv), 0, out.encode(), b"")


def instance():
    return hook_env.parse(env_fixture("hook-instance-migrate-post")).pre.instance


def test_eui64_address():
    subnet = ipaddress.IPv6Network("2001:db8:100::/64")
    assert eui64_address(subnet, "aa:00:01:3c:5e:7f") == ipaddress.IPv6Address(
        "2001:db8:100:0:a800:1ff:fe3c:5e7f"
    )


def test_instance_addresses_include_slaac_ipv6():
    assert neighbours.instance_addresses(instance()) == {
        ipaddress.ip_address("198.51.100.20"),
        ipaddress.ip_address("2001:db8:100:0:a800:1ff:fe3c:5e7f"),
    }


def test_parse_proxy_entries_skips_noise():
    entries = neighbours.parse_proxy_entries(SHOW6)
    assert [(str(e.address), e.device) for e in entries] == [
        ("2001:db8:100:0:a800:1ff:fe3c:5e7f", "br0"),
        ("2001:db8:100::99", "br0"),
    ]


def test_clean_up_deletes_only_the_instances_entries(tmp_path):
    ip = FakeIp()
    deleted = neighbours.clean_up(instance(), Host(tmp_path, ip))
    assert {str(entry.address) for entry in deleted} == {
        "198.51.100.20",
        "2001:db8:100:0:a800:1ff:fe3c:5e7f",
    }
    deletes = [call for call in ip.calls if call[3] == "del"]
    assert deletes == [
        ["ip", "-4", "neigh", "del", "proxy", "198.51.100.20", "dev", "br0"],
        ["ip", "-6", "neigh", "del", "proxy", "2001:db8:100:0:a800:1ff:fe3c:5e7f", "dev", "br0"],
    ]


def test_nothing_to_clean_is_a_no_op(tmp_path):
    ip = FakeIp(show4="", show6="")
    assert neighbours.clean_up(instance(), Host(tmp_path, ip)) == []
    assert all(call[3] == "show" for call in ip.calls)


@pytest.mark.parametrize("failing", ["show", "del"])
def test_ip_failures_are_logged_not_raised(failing, caplog, tmp_path):
    assert neighbours.clean_up(instance(), Host(tmp_path, FakeIp(fail=(failing,)))) == []
    assert "RTNETLINK" in caplog.text
