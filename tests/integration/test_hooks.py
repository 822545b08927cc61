"""The update-path hook under the lab's real Ganeti: installed where Ganeti looks, quick,
never failing a job, reporting from the master, cleaning up after a migration.

Needs the suite's packages installed in the lab (`./lab up` from this tree); the AMQP
test needs snf-ganeti-eventd running there (it drains the spool the hook writes to).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import jsonschema
import pytest
from amqp_capture import Capture

from ganeti_ext.events.schema import load_schema
from ganeti_ext.hooks import neighbours, notify
from ganeti_ext.inet import eui64_address
from labkit import settings

HOOKS_DIR = Path("/etc/ganeti/hooks")
HOOK_NAME = "50-snf-ganeti-ext"
SHIM = Path("/usr/lib/snf-ganeti-eventd/snf-ganeti-hook")
SPOOL = Path("/var/lib/snf-ganeti-eventd/spool")
DATA = Path(__file__).resolve().parent.parent / "data" / "hooks"


@pytest.fixture
def installed(lab):
    assert SHIM.exists(), "snf-ganeti-eventd (with the hook) is installed in the lab"
    return lab


def add(lab, name: str, *extra: str) -> None:
    lab.gnt(
        "gnt-instance", "add", "-t", "diskless", "-o", "snf-image+default", "-O", "img_id=null",
        "-H", "fake", "-B", "memory=64", "--net", f"0:network={settings.NETWORK.name},ip=pool",
        "--no-name-check", "--no-ip-check", "-n", settings.MASTER.name, *extra, name,
    )  # fmt: skip


def test_hook_is_installed_for_every_reported_path(installed):
    for hpath in notify.HPATHS:
        link = HOOKS_DIR / f"{hpath}-post.d" / HOOK_NAME
        assert link.resolve() == SHIM, link
        assert os.access(link, os.X_OK)
    assert not (HOOKS_DIR / "network-connect-post.d" / HOOK_NAME).exists()


def captured_env(hpath: str) -> dict[str, str]:
    lines = (DATA / f"{hpath}-post.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def run_hook(lab, env: dict[str, str]):
    argv = ["env", *(f"{key}={value}" for key, value in env.items()), str(SHIM)]
    return lab.run(argv, check=False, timeout=30)


def test_hook_exits_zero_even_on_garbage(installed):
    env = captured_env("instance-stop")
    env["GANETI_HOOKS_PHASE"] = "pre"  # does nothing: start-up and parsing only
    proc = run_hook(installed, env)
    assert proc.returncode == 0, proc.stderr

    env = captured_env("instance-stop")
    env["GANETI_HOOKS_VERSION"] = "two"
    proc = run_hook(installed, env)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr


def test_instance_add_notification_from_the_master(installed, instance_name):
    lab = installed
    name = instance_name()
    schema = load_schema("ganeti-hook")
    capture = Capture(lab, "ganeti.snf.event.hook", "itest-hook")
    try:
        add(lab, name, "--tags", "synnefo:network:0:protected")
        # The lab's eventd (started from its unit) drains the spool the hook wrote to.
        body = capture.wait(
            "the hook's notification, spooled and published",
            lambda _key, b: b.get("instance") == name and b.get("hpath") == "instance-add",
            timeout=30,
        )
    finally:
        capture.close()
    jsonschema.validate(body, schema)
    assert (body["operation"], body["status"], body["node"]) == (
        "OP_INSTANCE_CREATE",
        "up",
        settings.MASTER.name,
    )
    (nic,) = body["nics"]
    assert nic["network"] == settings.NETWORK.name and nic["firewall"] == "protected"


def proxy_entries(lab, node: int) -> set[str]:
    found = set()
    for family in (4, 6):
        out = lab.run(neighbours.show_command(family), node=node).stdout
        found |= {str(entry.address) for entry in neighbours.parse_proxy_entries(out)}
    return found


def test_migration_cleans_proxy_neighbours_on_the_old_primary(lab2, instance_name):
    assert SHIM.exists(), "snf-ganeti-eventd (with the hook) is installed in the lab"
    lab = lab2
    name = instance_name()
    add(lab, name)  # on node1, the master
    fields = lab.gnt("gnt-instance", "list", "--no-headers", "--separator=|",
                     "-o", "nic.ip/0,nic.mac/0", name).stdout.strip()  # fmt: skip
    ip, mac = fields.split("|")
    ipv6 = eui64_address(ipaddress.IPv6Network(settings.NETWORK.subnet6), mac)
    # What a routed NIC script leaves on the node (br0 stands in for the uplink here).
    lab.run(["ip", "neigh", "replace", "proxy", ip, "dev", "br0"])
    lab.run(["ip", "-6", "neigh", "replace", "proxy", str(ipv6), "dev", "br0"])
    assert {ip, str(ipv6)} <= proxy_entries(lab, 1)

    lab.gnt("gnt-instance", "migrate", "-f", name)

    assert not {ip, str(ipv6)} & proxy_entries(lab, 1), "the old primary forgot them"
