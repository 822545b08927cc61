import ipaddress

import pytest
from unit_helpers import DATA, env_fixture, env_with

from ganeti_ext.environ import hooks
from ganeti_ext.environ.reader import read_env_file
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


def real_hook(hpath: str) -> hooks.HookEnv:
    """A post-hook environment captured from real Ganeti (tests/data/hooks)."""
    return hooks.parse(read_env_file((DATA / "hooks" / f"{hpath}-post.env").read_text()))


def test_migrate_post_real_capture():
    env = real_hook("instance-migrate")
    assert env.phase == "post"
    assert env.pre.instance.primary == "node1.ganeti.test"
    assert env.post.instance.primary == "node2.ganeti.test"
    assert env.post.migrate_live is True
    # Ganeti rebuilds the post environment after the move: only the pre view's old
    # primary is the node the instance left.
    assert (env.pre.old_primary, env.pre.new_primary) == (
        "node1.ganeti.test",
        "node2.ganeti.test",
    )
    assert env.post.old_primary == "node2.ganeti.test"


def test_rename_post_real_capture_keeps_the_old_name_in_post():
    env = real_hook("instance-rename")
    assert (env.pre.instance.name, env.pre.instance_new_name) == ("snf-cap1", "snf-cap1b")
    assert env.post.instance.name == "snf-cap1"
    assert env.post.instance_new_name == "snf-cap1b"


def test_network_add_post_real_capture():
    env = real_hook("network-add")
    assert env.pre.instance is None
    assert env.post.network.name
    assert env.post.network.subnet.version == 4


def test_network_connect_real_capture_has_only_the_group():
    env = real_hook("network-connect")
    assert env.pre.network is None
    assert env.pre.group.name == "default" and env.pre.group.network_link == "br0"
    assert env.pre.group.network_vlan is None


@pytest.mark.parametrize(
    "hpath",
    # Ganeti 3.0's (the lab's) and, under ganeti-3.1/, 3.1's.
    sorted(
        str(p.relative_to(DATA / "hooks")).removesuffix("-post.env")
        for p in (DATA / "hooks").rglob("*-post.env")
    ),
)
def test_every_real_capture_parses(hpath):
    env = real_hook(hpath)
    assert env.hooks_path == hpath.rpartition("/")[2] and env.phase == "post"
    assert env.version == 2


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
    env = env_with("hook-instance-start-pre", **changes)
    with pytest.raises(EnvError) as failure:
        hooks.parse(env)
    assert failure.value.variable == variable
