import ipaddress

import pytest
from unit_helpers import env_fixture, env_with

from ganeti_ext.environ import nic
from ganeti_ext.errors import EnvError


def test_bridged_nic_with_network():
    request = nic.parse(env_fixture("kvm-vif-bridge"))
    assert request.interface == "tap0" and request.instance == "snf-42"
    assert request.mode == "bridged" and request.link == "br0" and request.bridge == "br0"
    assert request.ip == ipaddress.ip_address("198.51.100.20")
    assert request.index == 0 and request.vlan is None
    assert request.instance_tags == ("synnefo:network:0:protected", "owner:alice")
    assert request.network.name == "net1"
    assert request.network.tags == ("nfdhcpd", "ip-less-routed")
    assert request.network.gateway == ipaddress.ip_address("198.51.100.1")


def test_routed_nic_without_network():
    request = nic.parse(env_fixture("kvm-vif-bridge-routed"))
    assert request.mode == "routed" and request.link == "100"  # a routing table
    assert request.name == "backend" and request.ip is None and request.network is None
    assert request.instance_tags == ()


def test_only_interface_is_required():
    assert nic.parse({"INTERFACE": "tap3"}).mode is None


@pytest.mark.parametrize(
    "changes, variable",
    [
        pytest.param({"INTERFACE": None}, "INTERFACE", id="missing"),
        pytest.param({"INTERFACE": "tap0; reboot"}, "INTERFACE", id="shell"),
        pytest.param({"INTERFACE": "a" * 16}, "INTERFACE", id="too-long"),
        pytest.param({"INTERFACE": "tap/0"}, "INTERFACE", id="slash"),
        pytest.param({"INTERFACE": ".."}, "INTERFACE", id="dotdot"),
        pytest.param({"LINK": "br 0"}, "LINK", id="link"),
        pytest.param({"BRIDGE": "-br0"}, "BRIDGE", id="bridge"),
        pytest.param({"MODE": "macvtap"}, "MODE", id="mode"),
        pytest.param({"MAC": "aa:00:01:3c:5e:7g"}, "MAC", id="mac"),
        pytest.param({"IP": "198.51.100"}, "IP", id="ip"),
        pytest.param({"INTERFACE_INDEX": "first"}, "INTERFACE_INDEX", id="index"),
        pytest.param({"NETWORK_SUBNET": "198.51.100.0/33"}, "NETWORK_SUBNET", id="subnet"),
        pytest.param({"NETWORK_GATEWAY6": "198.51.100.1"}, "NETWORK_GATEWAY6", id="gateway6"),
    ],
)
def test_bad_environment_names_the_variable(changes, variable):
    env = env_with("kvm-vif-bridge", **changes)
    with pytest.raises(EnvError) as failure:
        nic.parse(env)
    assert failure.value.variable == variable
