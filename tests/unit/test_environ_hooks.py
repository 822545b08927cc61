import ipaddress

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import hooks
from ganeti_ext.errors import EnvError


def test_instance_start_pre():
    env = hooks.parse(env_fixture("hook-instance-start-pre"))
    assert (env.hooks_path, env.phase, env.version) == ("instance-start", "pre", 2)
    assert env.op_code == "OP_INSTANCE_STARTUP" and env.object_type == "INSTANCE"
    assert env.cluster == "cluster.ganeti.test" and env.master == "node1.ganeti.test"
    assert env.post is None
    instance = env.pre.instance
    assert instance.name == "snf-42" and instance.primary == "node1.ganeti.test"
    assert (instance.memory, instance.vcpus, instance.disk_template) == (64, 1, "ext")
    assert instance.tags == ("synnefo:network:0:protected", "owner:alice")
    first, second = instance.nics
    assert first.ip == ipaddress.ip_address("198.51.100.20") and first.bridge == "br0"
    assert first.vlan is None
    assert first.network.name == "net1" and first.network.tags == ("nfdhcpd",)
    assert second.name == "backend" and second.ip is None and second.network is None
    (disk,) = instance.disks
    assert (disk.provider, disk.dev_type, disk.size_mib) == ("archipelago", "ext", 1024)
    assert disk.id.endswith(".ext.disk0")
    assert instance.hvparams["kvm_path"] == "/usr/bin/qemu-system-x86_64"
    assert dict(env.unknown) == {"GANETI_FORCE": "False"}
    assert env.raw["GANETI_INSTANCE_NAME"] == "snf-42"


def test_migrate_post_has_both_views():
    env = hooks.parse(env_fixture("hook-instance-migrate-post"))
    assert env.phase == "post"
    assert env.pre.instance.primary == "node1.ganeti.test"
    assert env.post.instance.primary == "node2.ganeti.test"
    assert env.post.migrate_live is True
    assert (env.post.old_primary, env.post.new_primary) == (
        "node1.ganeti.test",
        "node2.ganeti.test",
    )
    assert set(env.unknown) == {
        "GANETI_OLD_SECONDARY",
        "GANETI_NEW_SECONDARY",
        "GANETI_POST_OLD_SECONDARY",
        "GANETI_POST_NEW_SECONDARY",
    }


def test_rename_post():
    env = hooks.parse(env_fixture("hook-instance-rename-post"))
    assert env.pre.instance_new_name == "snf-42-renamed"
    assert env.post.instance.name == "snf-42-renamed"
    assert env.pre.instance.name == "snf-42"


def test_network_add_post():
    env = hooks.parse(env_fixture("hook-network-add-post"))
    assert env.pre.instance is None
    assert env.post.network.name == "snf-net-7"
    assert env.post.network.subnet6 == ipaddress.ip_network("2001:db8:100::/64")
    assert not env.unknown


def test_network_connect_has_only_the_group():
    env = hooks.parse(env_fixture("hook-network-connect-pre"))
    assert env.pre.network is None
    assert env.pre.group.name == "default" and env.pre.group.network_link == "br0"
    assert env.pre.group.network_vlan is None
    assert env.pre.op_target == "snf-net-7"


@pytest.mark.parametrize(
    "changes, variable",
    [
        pytest.param({"GANETI_HOOKS_PHASE": "during"}, "GANETI_HOOKS_PHASE", id="phase"),
        pytest.param({"GANETI_HOOKS_PATH": None}, "GANETI_HOOKS_PATH", id="no-path"),
        pytest.param({"GANETI_HOOKS_VERSION": "two"}, "GANETI_HOOKS_VERSION", id="version"),
        pytest.param({"GANETI_OP_CODE": None}, "GANETI_OP_CODE", id="no-opcode"),
        pytest.param({"GANETI_INSTANCE_MEMORY": "lots"}, "GANETI_INSTANCE_MEMORY", id="memory"),
        pytest.param(
            {"GANETI_INSTANCE_NIC_COUNT": "x"}, "GANETI_INSTANCE_NIC_COUNT", id="nic-count"
        ),
        pytest.param({"GANETI_INSTANCE_NIC0_MAC": "nope"}, "GANETI_INSTANCE_NIC0_MAC", id="mac"),
        pytest.param(
            {"GANETI_INSTANCE_NIC0_NETWORK_GATEWAY": "1.2.3"},
            "GANETI_INSTANCE_NIC0_NETWORK_GATEWAY",
            id="gateway",
        ),
    ],
)
def test_bad_environment_names_the_variable(changes, variable):
    env = env_fixture("hook-instance-start-pre")
    for name, value in changes.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    with pytest.raises(EnvError) as failure:
        hooks.parse(env)
    assert failure.value.variable == variable
