"""A hotplugged-away NIC renumbers the others: the modify post-hook re-applies each live
tap with its NIC's index and name now, so firewall tags by index follow Ganeti."""

from __future__ import annotations

import dataclasses

from unit_helpers import DATA, env_fixture

from ganeti_ext.environ import hooks as hook_env
from ganeti_ext.environ import nic as nic_env
from ganeti_ext.environ.hooks import HookNic
from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.network import settings
from ganeti_ext.network.nic import current_env
from ganeti_ext.network.plan import plan_nic

UUID_0 = "87be0ad4-775b-4f69-a939-8680e0775eba"
UUID_1 = "0f5b8c1e-3a0d-4a59-9d4e-2b8f0c6d7e11"
# What the NIC script recorded for the instance's second NIC (INTERFACE_INDEX 1).
RECORDED = {
    "INTERFACE": "tap7",
    "INSTANCE": "snf-1",
    "MAC": "aa:00:01:00:00:02",
    "MODE": "bridged",
    "LINK": "br0",
    "INTERFACE_INDEX": "1",
    "INTERFACE_UUID": UUID_1,
    "INTERFACE_NAME": "backup",
    "TAGS": "synnefo:network:0:protected",
}
TAGS = ("synnefo:network:0:protected",)


def hook_nic(index, *, uuid=None, mac=None, name=None) -> HookNic:
    return HookNic(index, name, uuid, None, mac, "bridged", "br0", None, "br0", None)


def profile(env) -> str | None:
    return plan_nic(nic_env.parse(env), settings.Settings()).profile


def test_after_nic_0_is_removed_the_second_nic_is_nic_0_and_takes_its_profile():
    assert profile(RECORDED) is None
    now = current_env(RECORDED, TAGS, [hook_nic(0, uuid=UUID_1, mac=RECORDED["MAC"])])
    assert now["INTERFACE_INDEX"] == "0"
    assert "INTERFACE_NAME" not in now  # its name was dropped meanwhile
    assert profile(now) == "protected"


def test_the_nic_is_found_by_its_mac_when_no_uuid_matches():
    now = current_env(RECORDED, TAGS, [hook_nic(0, mac="AA:00:01:00:00:02", name="backup")])
    assert now["INTERFACE_INDEX"] == "0" and now["INTERFACE_NAME"] == "backup"


def test_the_uuid_wins_over_a_mac_another_nic_took_meanwhile():
    nics = [hook_nic(0, mac=RECORDED["MAC"]), hook_nic(1, uuid=UUID_1, mac="aa:00:01:00:00:09")]
    assert current_env(RECORDED, TAGS, nics)["INTERFACE_INDEX"] == "1"


def test_a_nic_no_longer_listed_keeps_what_it_had_and_takes_the_new_tags():
    now = current_env(RECORDED, ("synnefo:network:1:limited",), [hook_nic(0, uuid=UUID_0)])
    assert now["INTERFACE_INDEX"] == "1" and now["INTERFACE_NAME"] == "backup"
    assert profile(now) == "limited"


def test_the_recorded_environment_is_left_as_it_was():
    before = dict(RECORDED)
    current_env(RECORDED, (), [hook_nic(0, uuid=UUID_1)])
    assert before == RECORDED


def test_on_captures_of_ganeti_3_1_the_hotplugged_nic_is_found_by_its_uuid():
    """The NIC script's environment for a NIC hotplugged into a running instance and the
    instance-modify post-hook's that followed, both captured from 3.1.0~rc2."""
    recorded = env_fixture("real/nic-bridged-hotplug-3.1")
    hook = hook_env.parse(
        read_env_file((DATA / "hooks" / "ganeti-3.1" / "instance-modify-post.env").read_text())
    )
    nics = hook.post.instance.nics
    assert len(nics) == 2
    now = current_env(recorded, TAGS, nics)
    assert now["INTERFACE_INDEX"] == "1"
    # Had NIC 0 gone meanwhile, the same NIC would be NIC 0 and protected.
    assert profile(current_env(recorded, TAGS, nics[1:])) is None
    renumbered = [dataclasses.replace(nics[1], index=0)]
    assert profile(current_env(recorded, TAGS, renumbered)) == "protected"
