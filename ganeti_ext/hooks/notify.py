"""The `ganeti-hook` notification a post-hook hands to eventd (pure).

A hook sees what no job file says: the instance's NICs as Ganeti configured them after
the operation (with their network and firewall profile), the admin status, the new name
after a rename, the old primary after a migration. The master turns that into one
message on ganeti.<prefix>.event.hook (schema ganeti_ext/events/schemas/ganeti-hook.v1.json).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from ganeti_ext import firewall
from ganeti_ext.amqp import routing
from ganeti_ext.environ.hooks import HookEnv, HookInstance, HookView
from ganeti_ext.spool import OutgoingMessage

MESSAGE_TYPE = "ganeti-hook"

INSTANCE_HPATHS = (
    "instance-add",
    "instance-start",
    "instance-stop",
    "instance-reboot",
    "instance-modify",
    "instance-remove",
    "instance-rename",
    "instance-migrate",
    "instance-failover",
)
# network-connect and network-disconnect are left out: their hooks get only the node
# group (GANETI_GROUP_*), not even the network's name, so there is nothing to report
# that eventd's ganeti-network-status message (with job_fields.group_name) lacks.
NETWORK_HPATHS = ("network-add", "network-modify", "network-remove", "network-rename")
HPATHS = INSTANCE_HPATHS + NETWORK_HPATHS
MOVE_HPATHS = ("instance-migrate", "instance-failover")


def hook_routing_key(name: str) -> str:
    return f"ganeti.{routing.prefix_of(name)}.event.hook"


def event_time(now: float) -> list[int]:
    seconds = math.floor(now)
    return [seconds, min(999_999, round((now - seconds) * 1e6))]


def admin_status(raw: str | None) -> str | None:
    """up/down/offline; instance-add says True/False (whether it was started)."""
    return {"True": "up", "False": "down"}.get(raw or "", raw)


def _instance_view(env: HookEnv) -> HookInstance | None:
    """The instance after the operation when Ganeti says it, else before."""
    if env.post is not None and env.post.instance is not None:
        return env.post.instance
    return env.pre.instance


def nic_list(
    instance: HookInstance, tag_prefix: str = firewall.DEFAULT_TAG_PREFIX
) -> list[dict[str, Any]]:
    """NICs in the shape of instance_nics in ganeti-op-status messages."""
    nics = []
    for nic in instance.nics:
        keys = firewall.nic_keys(nic.index, nic.name, nic.uuid)
        nics.append(
            {
                "name": nic.name,
                "network": nic.network.name if nic.network else None,
                "ip": str(nic.ip) if nic.ip is not None else None,
                "mac": nic.mac,
                "mode": nic.mode,
                "link": nic.link,
                "uuid": nic.uuid,
                "firewall": firewall.profile_for(instance.tags, keys, tag_prefix),
            }
        )
    return nics


def _network_fields(view: HookView) -> dict[str, Any]:
    network = view.network
    if network is None:
        return {}
    return {
        "network_info": {
            "subnet": str(network.subnet) if network.subnet else None,
            "gateway": str(network.gateway) if network.gateway else None,
            "subnet6": str(network.subnet6) if network.subnet6 else None,
            "gateway6": str(network.gateway6) if network.gateway6 else None,
            "mac_prefix": network.mac_prefix,
            "tags": list(network.tags),
        }
    }


def build(
    env: HookEnv,
    now: float,
    node: str | None = None,
    tag_prefix: str = firewall.DEFAULT_TAG_PREFIX,
) -> OutgoingMessage | None:
    """The message for one hook run; None for hook paths this suite does not report.

    `tag_prefix` is snf-network's FIREWALL_TAG_PREFIX, so NICs carry the profile the NIC
    script applied."""
    if env.hooks_path not in HPATHS:
        return None
    view = env.post if env.post is not None else env.pre
    body: dict[str, Any] = {
        "type": MESSAGE_TYPE,
        "hpath": env.hooks_path,
        "phase": env.phase,
        "operation": env.op_code,
        "target": view.op_target or env.pre.op_target,
        "cluster": env.cluster,
        "event_time": event_time(now),
    }
    if node:
        body["node"] = node
    if env.hooks_path in INSTANCE_HPATHS:
        instance = _instance_view(env)
        # On rename the message is about the instance the cloud layer knows, the old
        # name; the new one is new_name.
        name = env.pre.instance.name if env.pre.instance else (instance.name if instance else None)
        name = name or body["target"]
        if not name:
            return None
        body["instance"] = name
        if instance is not None:
            body["status"] = admin_status(instance.status)
            body["nics"] = nic_list(instance, tag_prefix)
            body["tags"] = list(instance.tags)
            body["primary"] = instance.primary
        new_name = (env.post.instance_new_name if env.post else None) or env.pre.instance_new_name
        if env.hooks_path == "instance-rename" and new_name:
            body["new_name"] = new_name
        if env.hooks_path in MOVE_HPATHS:
            # The post view is rebuilt after the move, when the old primary is gone from
            # the instance: the pre view has the node it left.
            body["old_primary"] = env.pre.old_primary
            body["new_primary"] = env.pre.new_primary
    else:
        network = view.network or env.pre.network
        old_name = view.old_name or env.pre.old_name  # network-rename (Ganeti >= 3.1)
        name = network.name if network is not None else (old_name or body["target"])
        if not name:
            return None
        body["network"] = name
        new_name = view.new_name or env.pre.new_name
        if env.hooks_path == "network-rename" and new_name:
            body["new_name"] = new_name
        body.update(_network_fields(view if view.network else env.pre))
    return OutgoingMessage(
        routing_key=hook_routing_key(name),
        body=body,
        message_id=f"hook-{uuid.uuid4().hex}",
    )
