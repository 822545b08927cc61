import jsonschema
import pytest
from unit_helpers import DATA, env_fixture

from ganeti_ext.environ import hooks as hook_env
from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.events.schema import load_schema
from ganeti_ext.hooks import notify

NOW = 1700000000.25
SCHEMA = load_schema("ganeti-hook")


def captured(hpath):
    """A hook environment captured in the lab (tests/data/hooks/<hpath>-post.env)."""
    return read_env_file((DATA / "hooks" / f"{hpath}-post.env").read_text())


def build(fixture, **changes):
    env = captured(fixture) if (DATA / "hooks" / f"{fixture}-post.env").exists() else None
    env = env if env is not None else env_fixture(fixture)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return notify.build(hook_env.parse(env), NOW, node="node1.ganeti.test")


def valid(message):
    jsonschema.validate(message.body, SCHEMA)
    return message.body


def test_migrate_reports_nics_after_the_move_and_the_node_it_left():
    message = build("hook-instance-migrate-post")
    body = valid(message)
    assert message.routing_key == "ganeti.snf.event.hook"
    assert message.message_id.startswith("hook-")
    assert body["type"] == "ganeti-hook" and body["hpath"] == "instance-migrate"
    assert (body["phase"], body["operation"]) == ("post", "OP_INSTANCE_MIGRATE")
    assert body["instance"] == "snf-42" and body["cluster"] == "cluster.ganeti.test"
    assert body["event_time"] == [1700000000, 250000]
    assert body["status"] == "up" and body["primary"] == "node2.ganeti.test"
    assert (body["old_primary"], body["new_primary"]) == ("node1.ganeti.test", "node2.ganeti.test")
    first, second = body["nics"]
    assert first == {
        "name": None,
        "network": "net1",
        "ip": "198.51.100.20",
        "mac": "aa:00:01:3c:5e:7f",
        "mode": "bridged",
        "link": "br0",
        "uuid": "6e5d4c3b-2a19-4f8e-b7d6-c5b4a3928170",
        "firewall": "protected",  # synnefo:network:0:protected
    }
    assert second["name"] == "backend" and second["network"] is None
    assert second["firewall"] is None


def test_old_primary_comes_from_the_pre_view_which_the_move_does_not_rewrite():
    # Ganeti rebuilds the post environment after the move: POST_OLD_PRIMARY is then the
    # new node. The pre-phase copy still names the node the instance left.
    body = build(
        "hook-instance-migrate-post",
        GANETI_POST_OLD_PRIMARY="node2.ganeti.test",
    ).body
    assert body["old_primary"] == "node1.ganeti.test"


def test_firewall_profile_by_nic_name_or_uuid():
    body = build(
        "hook-instance-migrate-post",
        GANETI_POST_INSTANCE_TAGS="synnefo:network:backend:limited "
        "synnefo:network:6e5d4c3b-2a19-4f8e-b7d6-c5b4a3928170:unprotected",
    ).body
    assert [nic["firewall"] for nic in body["nics"]] == ["unprotected", "limited"]


def test_rename_is_about_the_old_name_and_carries_the_new_one():
    # Captured: Ganeti's post view still names the old instance, plus POST_INSTANCE_NEW_NAME.
    message = build("instance-rename")
    body = valid(message)
    assert body["instance"] == "snf-cap1" and body["new_name"] == "snf-cap1b"
    assert message.routing_key == "ganeti.snf.event.hook"


def test_add_reports_the_nics_ganeti_assigned():
    body = valid(build("instance-add"))
    assert (body["instance"], body["operation"]) == ("snf-cap1", "OP_INSTANCE_CREATE")
    # instance-add says STATUS=True (it was started); the message says up.
    assert body["status"] == "up"
    assert [(nic["network"], nic["ip"], nic["firewall"]) for nic in body["nics"]] == [
        ("net1", "198.51.100.3", "protected"),
        ("snf-cap-net", "198.51.100.130", "limited"),
    ]
    assert body["nics"][1]["name"] == "second" and body["nics"][1]["mac"] == "aa:00:02:60:27:22"


def test_modify_reports_the_nics_after_the_change():
    body = valid(build("instance-modify"))
    assert body["nics"][1]["ip"] == "198.51.100.141"


@pytest.mark.parametrize(
    "hpath, operation, status",
    [
        ("instance-start", "OP_INSTANCE_STARTUP", "up"),
        ("instance-stop", "OP_INSTANCE_SHUTDOWN", "down"),
        ("instance-reboot", "OP_INSTANCE_REBOOT", "up"),
        ("instance-remove", "OP_INSTANCE_REMOVE", "down"),
    ],
)
def test_captured_instance_hooks(hpath, operation, status):
    body = valid(build(hpath))
    assert (body["hpath"], body["operation"], body["status"]) == (hpath, operation, status)
    assert body["instance"].startswith("snf-cap1") and len(body["nics"]) == 2


@pytest.mark.parametrize("hpath", ["network-add", "network-modify", "network-remove"])
def test_captured_network_hooks(hpath):
    message = build(hpath)
    body = valid(message)
    assert body["network"] == "snf-cap-net" and "instance" not in body
    assert message.routing_key == "ganeti.snf.event.hook"
    if hpath != "network-remove":  # remove's hook gets only the name
        assert body["network_info"]["subnet"] == "198.51.100.128/28"
        assert body["network_info"]["tags"] == ["nfdhcpd"]


def test_network_rename_of_ganeti_3_1():
    # Captured from 3.1.0~rc2: LUNetworkRename gives only OLD_NAME and NEW_NAME.
    message = build("network-rename")
    body = valid(message)
    assert (body["network"], body["new_name"]) == ("evcap-net", "evcap-net2")
    assert message.routing_key == "ganeti.evcap.event.hook"  # the name's prefix


@pytest.mark.parametrize("hpath", ["network-connect", "network-disconnect"])
def test_connect_hooks_are_not_reported(hpath):
    # Captured: these hooks get the node group only, not even the network's name.
    assert build(hpath) is None


def test_unreported_hook_path_builds_nothing():
    assert build("hook-instance-migrate-post", GANETI_HOOKS_PATH="node-add") is None


@pytest.mark.parametrize("hpath", notify.HPATHS)
def test_every_reported_hook_path_is_in_the_schema(hpath):
    assert hpath in SCHEMA["properties"]["hpath"]["enum"]


def test_captured_migrate_old_primary_is_only_right_in_the_pre_view():
    env = hook_env.parse(captured("instance-migrate"))
    # Ganeti rebuilt the post view after the move: it calls the new node the old one.
    assert env.post.old_primary == "node2.ganeti.test"
    body = valid(notify.build(env, NOW))
    assert (body["old_primary"], body["new_primary"]) == ("node1.ganeti.test", "node2.ganeti.test")
    assert body["primary"] == "node2.ganeti.test" and body["nics"][0]["ip"] == "198.51.100.2"
