import ipaddress

import pytest
from unit_helpers import env_fixture, env_with

from ganeti_ext.environ import osapi
from ganeti_ext.errors import EnvError


def test_create_on_ext_disk():
    request = osapi.parse_create(env_fixture("os-create-ext"))
    assert request.reinstall is False
    assert request.os.os_name == "snf-image" and request.os.variant == "default"
    assert request.os.api_version == 20 and request.os.debug_level == 0
    assert dict(request.os.params) == {
        "img_format": "diskdump",
        "img_id": "null",
        "img_passwd": "s3cr3t-Pa55",
    }
    instance = request.instance
    assert instance.name == "snf-42"
    assert instance.primary_node == "5d2b7b9e-8a35-4c1e-9f5e-1b6d3a2c9e10"
    assert instance.secondary_nodes == ()
    assert instance.hvparams["kvm_path"] == "/usr/bin/qemu-system-x86_64"
    assert instance.beparams["maxmem"] == "64"
    (disk,) = instance.disks
    assert (disk.path, disk.size_mib, disk.access, disk.backend_type) == (
        "/dev/loop3",
        1024,
        "rw",
        "block",
    )
    (nic,) = instance.nics
    assert nic.mac == "aa:00:01:3c:5e:7f" and nic.mode == "bridged" and nic.bridge == "br0"
    assert nic.ip == ipaddress.ip_address("198.51.100.20")
    assert nic.network.name == "net1"
    assert nic.network.subnet == ipaddress.ip_network("198.51.100.0/24")
    assert nic.network.gateway6 == ipaddress.ip_address("2001:db8:100::1")
    assert nic.network.mac_prefix == "aa:00:01"
    assert nic.network.tags == ("nfdhcpd", "ip-less-routed")


def test_reinstall_on_file_disks():
    request = osapi.parse_create(env_fixture("os-create-file"))
    assert request.reinstall is True
    assert request.os.debug_level == 1
    assert [disk.backend_type for disk in request.instance.disks] == ["file:loop", "file:loop"]
    assert request.instance.disks[0].name == "root"
    assert request.instance.disks[1].access == "ro"
    nic = request.instance.nics[0]
    assert nic.mode == "routed" and nic.ip is None and nic.network is None and nic.bridge is None


def test_verify_gets_only_os_variables():
    settings = osapi.parse_verify(env_fixture("os-verify"))
    assert settings.params["img_passwd_hash"].startswith("$6$")


def test_params_never_appear_in_repr():
    request = osapi.parse_create(env_fixture("os-create-ext"))
    assert "s3cr3t" not in repr(request)


def test_rename():
    request = osapi.parse_rename(env_fixture("os-rename"))
    assert (request.old_name, request.instance.name) == ("snf-42", "snf-42-renamed")


def test_export():
    request = osapi.parse_export(env_fixture("os-export"))
    assert (request.disk_index, request.disk_path) == (0, "/dev/loop3")


def test_import_uses_the_import_variables():
    env = env_fixture("os-export")
    with pytest.raises(EnvError, match=r"^IMPORT_INDEX: is missing"):
        osapi.parse_import(env)
    env.update(IMPORT_INDEX="0", IMPORT_DEVICE="/dev/loop3")
    assert osapi.parse_import(env).disk_path == "/dev/loop3"


@pytest.mark.parametrize(
    "changes, variable",
    [
        pytest.param({"OS_API_VERSION": "15"}, "OS_API_VERSION", id="api-version"),
        pytest.param({"OS_NAME": None}, "OS_NAME", id="no-os-name"),
        pytest.param({"DEBUG_LEVEL": "loud"}, "DEBUG_LEVEL", id="debug-level"),
        pytest.param({"INSTANCE_NAME": ""}, "INSTANCE_NAME", id="empty-name"),
        pytest.param({"DISK_COUNT": None}, "DISK_COUNT", id="no-disk-count"),
        pytest.param({"DISK_COUNT": "-1"}, "DISK_COUNT", id="negative-disk-count"),
        pytest.param({"DISK_COUNT": "2"}, "DISK_1_PATH", id="missing-disk"),
        pytest.param({"DISK_0_SIZE": "1G"}, "DISK_0_SIZE", id="disk-size"),
        pytest.param({"DISK_0_ACCESS": "rwx"}, "DISK_0_ACCESS", id="disk-access"),
        pytest.param({"NIC_COUNT": "2"}, "NIC_1_MAC", id="missing-nic"),
        pytest.param({"NIC_0_MAC": "aa:00:01:3c:5e"}, "NIC_0_MAC", id="short-mac"),
        pytest.param({"NIC_0_MODE": "nat"}, "NIC_0_MODE", id="nic-mode"),
        pytest.param({"NIC_0_IP": "198.51.100.300"}, "NIC_0_IP", id="ip"),
        pytest.param(
            {"NIC_0_NETWORK_SUBNET": "198.51.100.1/24"},
            "NIC_0_NETWORK_SUBNET",
            id="subnet-host-bits",
        ),
        pytest.param(
            {"NIC_0_NETWORK_SUBNET": "2001:db8::/64"}, "NIC_0_NETWORK_SUBNET", id="subnet-family"
        ),
        pytest.param(
            {"NIC_0_NETWORK_SUBNET6": "198.51.100.0/24"},
            "NIC_0_NETWORK_SUBNET6",
            id="subnet6-family",
        ),
        pytest.param(
            {"NIC_0_NETWORK_GATEWAY": "2001:db8::1"}, "NIC_0_NETWORK_GATEWAY", id="gateway-family"
        ),
        pytest.param(
            {"NIC_0_NETWORK_MAC_PREFIX": "aa:00"}, "NIC_0_NETWORK_MAC_PREFIX", id="mac-prefix"
        ),
        pytest.param({"INSTANCE_REINSTALL": "perhaps"}, "INSTANCE_REINSTALL", id="reinstall"),
    ],
)
def test_bad_create_environment_names_the_variable(changes, variable):
    with pytest.raises(EnvError) as failure:
        osapi.parse_create(env_with("os-create-ext", **changes))
    assert failure.value.variable == variable
    assert str(failure.value).startswith(f"{variable}: ")


def test_rename_needs_the_old_name():
    with pytest.raises(EnvError, match=r"^OLD_INSTANCE_NAME: "):
        osapi.parse_rename(env_with("os-rename", OLD_INSTANCE_NAME=None))


def test_export_index_must_be_a_disk():
    with pytest.raises(EnvError, match=r"^EXPORT_INDEX: no disk 3"):
        osapi.parse_export(env_with("os-export", EXPORT_INDEX="3"))
