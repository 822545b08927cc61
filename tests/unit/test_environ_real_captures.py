"""The environment parsers against environments captured from real Ganeti.

tests/data/env/real/*.env were dumped by throw-away OS, ExtStorage and kvm-vif-bridge
scripts during an instance's add, grow, reboot, reinstall, rename and remove on the lab's
Ganeti 3.0; nic-bridged-hotplug-3.1.env by a kvm-vif-bridge wrapper on Ganeti 3.1.0~rc2
(the other release's root) for a NIC hotplugged into a running instance, keeping only
the variables Ganeti sets (that root's noded had inherited a shell's environment).
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import extstorage, nic, osapi


def real(name: str) -> dict[str, str]:
    return env_fixture(f"real/{name}")


def test_os_create_with_two_disks_and_two_nics():
    request = osapi.parse_create(real("os-create"))
    inst = request.instance
    assert not request.reinstall
    assert inst.name == "snf-cap1"
    assert inst.hypervisor == "kvm"
    assert inst.hvparams["kernel_path"] == "/var/cache/ganeti-ext-lab/guest/vmlinuz"
    assert [d.path for d in inst.disks] == ["/dev/loop0", "/dev/loop1"]
    assert [d.size_mib for d in inst.disks] == [64, 32]
    assert inst.disks[1].name == "data"
    first, second = inst.nics
    assert first.ip == ip_address("198.51.100.3")
    assert first.network.name == "net1"
    assert first.network.subnet6 == ip_network("2001:db8:100::/64")
    assert "nfdhcpd" in first.network.tags
    assert second.network is None and second.name == "mgmt"
    assert request.os.params["img_id"] == "null"


def test_os_reinstall_and_rename_and_verify():
    assert osapi.parse_create(real("os-create-reinstall")).reinstall
    rename = osapi.parse_rename(real("os-rename"))
    assert (rename.old_name, rename.instance.name) == ("snf-cap1", "snf-cap2")
    settings = osapi.parse_verify(real("os-verify"))
    assert settings.params["img_format"] == "diskdump"


@pytest.mark.parametrize(
    "verb", ["create", "attach", "detach", "grow", "open", "remove", "setinfo"]
)
def test_extstorage_verbs(verb):
    request = extstorage.parse(verb, real(f"es-{verb}"))
    assert request.name.endswith((".ext.disk0", ".ext.disk1"))
    assert request.access == "kernelspace"
    if verb == "create":
        assert request.size_mib in (64, 32)
    if verb == "grow":
        assert (request.size_mib, request.new_size_mib) == (64, 80)
    if verb == "setinfo":
        assert request.metadata.startswith("originstname+snf-cap")
    if verb == "open":
        assert request.open_exclusive


def test_kvm_vif_bridge_with_and_without_a_network():
    bridged = nic.parse(real("nic-bridged-network"))
    assert (bridged.interface, bridged.mode, bridged.link) == ("tap0", "bridged", "br0")
    assert bridged.network.gateway == ip_address("198.51.100.1")
    plain = nic.parse(real("nic-bridged-plain"))
    assert plain.interface == "tap1" and plain.name == "mgmt" and plain.network is None
    assert plain.ip is None and plain.instance_tags == ()


def test_a_nic_hotplugged_on_ganeti_3_1():
    request = nic.parse(real("nic-bridged-hotplug-3.1"))
    assert (request.interface, request.index) == ("tap2", 1)
    assert request.uuid == "e8f2705c-4110-49a5-9d56-bb6922862e8c"
    assert request.ip == ip_address("198.51.100.3")
    assert request.network.name == "evcap-net2"
