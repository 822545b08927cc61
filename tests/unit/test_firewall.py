"""One firewall-profile resolver for the NIC script, eventd and the hooks."""

import pytest
from unit_helpers import DATA

from ganeti_ext import firewall
from ganeti_ext.environ import hooks as hook_env
from ganeti_ext.environ.nic import parse as parse_nic
from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.events.instances import details_of
from ganeti_ext.hooks import notify
from ganeti_ext.network.plan import plan_nic
from ganeti_ext.network.settings import Settings

UUID = "87be0ad4-775b-4f69-a939-8680e0775eba"
KEYS = ("0", "mgmt", UUID)


@pytest.mark.parametrize(
    "tags, expected",
    [
        pytest.param((), None, id="none"),
        pytest.param(("synnefo:network:0:limited",), "limited", id="index"),
        pytest.param(("synnefo:network:mgmt:protected",), "protected", id="name"),
        pytest.param((f"synnefo:network:{UUID}:unprotected",), "unprotected", id="uuid"),
        pytest.param(("synnefo:network:1:limited",), None, id="other-nic"),
        pytest.param(("synnefo:network:0:open",), None, id="unknown-profile"),
        pytest.param(("owner:alice", "synnefo:network:0:protected"), "protected", id="mixed"),
        # Ganeti sorts tags: the last matching one wins, whatever key it names.
        pytest.param(
            ("synnefo:network:0:limited", f"synnefo:network:{UUID}:protected"),
            "protected",
            id="index-then-uuid",
        ),
    ],
)
def test_profile_from_tags(tags, expected):
    assert firewall.profile_for(tags, KEYS) == expected


def test_order_given_does_not_matter():
    tags = (f"synnefo:network:{UUID}:protected", "synnefo:network:0:limited")
    assert firewall.profile_for(tags, KEYS) == firewall.profile_for(reversed(tags), KEYS)


def test_custom_prefix_ignores_the_default_one():
    tags = ("synnefo:network:0:limited", "site:fw:0:protected")
    assert firewall.profile_for(tags, KEYS, "site:fw:") == "protected"
    assert firewall.profile_for(tags, KEYS) == "limited"


def test_nic_keys_skip_what_is_unknown():
    assert firewall.nic_keys(0, None, UUID) == ("0", UUID)
    assert firewall.nic_keys(None, "mgmt", None) == ("mgmt",)


# The case that used to differ: the NIC got `protected`, the messages said `limited`.
TAGS = ["synnefo:network:0:limited", f"synnefo:network:{UUID}:protected", "site:fw:0:limited"]


def _nic_script(prefix):
    env = {
        "INTERFACE": "tap0",
        "INTERFACE_INDEX": "0",
        "INTERFACE_UUID": UUID,
        "INSTANCE": "snf-1",
        "MAC": "aa:00:00:00:00:01",
        "MODE": "bridged",
        "LINK": "br0",
        "TAGS": " ".join(TAGS),
    }
    return plan_nic(parse_nic(env), Settings(firewall_tag_prefix=prefix)).profile


def _eventd(prefix):
    config = {"instances": {"i": {"name": "snf-1", "tags": TAGS, "nics": [{"uuid": UUID}]}}}
    return details_of(config, config["instances"]["i"], prefix)["instance_nics"][0]["firewall"]


def _hook(prefix):
    env = read_env_file((DATA / "hooks" / "instance-modify-post.env").read_text())
    for key in list(env):
        if key.endswith("INSTANCE_TAGS"):
            env[key] = " ".join(TAGS)
        elif key.endswith("INSTANCE_NIC0_UUID"):
            env[key] = UUID
    return notify.build(hook_env.parse(env), 0.0, tag_prefix=prefix).body["nics"][0]["firewall"]


@pytest.mark.parametrize(
    "prefix, expected", [("synnefo:network:", "protected"), ("site:fw:", "limited")]
)
def test_nic_script_eventd_and_hooks_agree(prefix, expected):
    assert _nic_script(prefix) == _eventd(prefix) == _hook(prefix) == expected
