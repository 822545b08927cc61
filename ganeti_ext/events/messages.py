"""The AMQP messages of one opcode status change (types and fields: docs/amqp-contract.md).

`build` is a function of the job file's content, the opcode index and the status, plus
the instance's configuration (its tags; its NICs and disks for finalized operations), so
a message rebuilt after a crash carries the same message_id and equals the one built
before it unless Ganeti's configuration changed meanwhile (consumers keep the first).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ganeti_ext.amqp import routing
from ganeti_ext.events.jobfile import ERROR, FINAL_STATUSES, SUCCESS, WAITING, Job, OpCode
from ganeti_ext.events.secrets import replayable, scrub
from ganeti_ext.events.transitions import event_time, log_message
from ganeti_ext.spool import OutgoingMessage

DEFAULT_HEARTBEAT_PREFIX = "snf:eventd:heartbeat"

# Instance operations after whose success the cloud layer wants the instance's config.
DETAILED_OPS = frozenset(
    {
        "OP_INSTANCE_CREATE",
        "OP_INSTANCE_STARTUP",
        "OP_INSTANCE_SET_PARAMS",
        "OP_INSTANCE_GROW_DISK",
    }
)
# ... and also after their failure or cancellation: a half-applied change leaves the
# instance's NICs and disks as they are now, and the cloud layer must know it.
SYNCED_ON_FAILURE_OPS = frozenset({"OP_INSTANCE_SET_PARAMS", "OP_INSTANCE_GROW_DISK"})
INSTANCE_DETAIL_FIELDS = ("instance_nics", "instance_disks", "instance_hvparams")
JOB_FIELDS_OPS = frozenset({"OP_INSTANCE_CREATE", "OP_INSTANCE_SET_PARAMS"})
INSTANCE_JOB_FIELDS = ("nics", "disks", "hvparams", "beparams")
NETWORK_JOB_FIELDS = {
    "subnet": "network",
    "gateway": "gateway",
    "add_reserved_ips": "add_reserved_ips",
    "remove_reserved_ips": "remove_reserved_ips",
    "group_name": "group_name",
}
# Cluster-level operations worth a ganeti-cluster-status message: everything that is
# not about one instance or network, except read-only queries and periodic checks
# (which would flood consumers with noise).
CLUSTER_PREFIXES = ("OP_CLUSTER_", "OP_NODE_", "OP_GROUP_", "OP_TEST_", "OP_TAGS_")
READ_ONLY_MARKERS = ("_QUERY", "_VERIFY", "_DIAGNOSE", "OP_TAGS_GET", "OP_TAGS_SEARCH")

InstanceLookup = Callable[[str], "dict[str, Any] | None"]

# Kinds of message an opcode gives.
INSTANCE = "instance"
NETWORK = "network"
CLUSTER = "cluster"
HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Context:
    """What a message needs besides the job file."""

    cluster: str
    heartbeat_prefix: str = DEFAULT_HEARTBEAT_PREFIX
    instance_details: InstanceLookup = lambda _name: None


def message_id(cluster: str, job_id: int, op_index: int, status: str) -> str:
    """The dedup key: one message per opcode and status, ever."""
    return f"{cluster}:{job_id}:{op_index}:{status}"


def classify(op: OpCode, heartbeat_prefix: str = DEFAULT_HEARTBEAT_PREFIX) -> str | None:
    """Which kind of message `op` gives (None: none)."""
    op_id = op.op_id
    op_input = op.input
    if op_id in ("OP_TAGS_SET", "OP_TAGS_DEL"):
        kind = op_input.get("kind")
        if kind == "instance" and isinstance(op_input.get("name"), str):
            return INSTANCE
        if (
            op_id == "OP_TAGS_SET"
            and kind == "cluster"
            and op_input.get("dry_run")
            and any(str(tag).startswith(heartbeat_prefix) for tag in op_input.get("tags") or [])
        ):
            return HEARTBEAT
    if any(marker in op_id for marker in READ_ONLY_MARKERS):
        return None
    if op_id.startswith("OP_INSTANCE_"):
        return INSTANCE if isinstance(op_input.get("instance_name"), str) else None
    if op_id.startswith("OP_NETWORK_"):
        return NETWORK if isinstance(op_input.get("network_name"), str) else None
    if op_id.startswith(CLUSTER_PREFIXES):
        return CLUSTER
    return None


def wants_message(op: OpCode, status: str, heartbeat_prefix: str) -> bool:
    """Whether `op` reaching `status` is published.

    A heartbeat is answered once, when its dry-run job is `waiting`, as upstream's
    dispatcher expects (it gives up after a few seconds, before a slow job ends)."""
    kind = classify(op, heartbeat_prefix)
    if kind is None:
        return False
    return kind != HEARTBEAT or status == WAITING


def build(job: Job, op_index: int, status: str, context: Context) -> OutgoingMessage | None:
    """The message for op `op_index` of `job` reaching `status`, or None if it has none."""
    op = job.ops[op_index]
    if not wants_message(op, status, context.heartbeat_prefix):
        return None
    kind = classify(op, context.heartbeat_prefix)
    key = message_id(context.cluster, job.id, op_index, status)
    if kind == HEARTBEAT:
        body: dict[str, Any] = {"type": routing.HEARTBEAT, "cluster": context.cluster}
        return OutgoingMessage(routing.HEARTBEAT_ROUTING_KEY, body, f"{key}:heartbeat")
    when = event_time(job, op, status)
    common = {
        "operation": op.op_id,
        "status": status,
        "jobId": job.id,
        "event_time": list(when),
        "cluster": context.cluster,
    }
    if kind == CLUSTER:
        body = {"type": routing.CLUSTER_STATUS, **common}
        return OutgoingMessage(routing.CLUSTER_ROUTING_KEY, body, key)
    logmsg = log_message(op, status, when)
    if kind == NETWORK:
        name = op.input["network_name"]
        body = {
            "type": routing.NETWORK_STATUS,
            "network": name,
            "logmsg": logmsg,
            **common,
            "job_fields": {
                field: op.input.get(source) for field, source in NETWORK_JOB_FIELDS.items()
            },
        }
        if op.op_id == "OP_NETWORK_RENAME":  # Ganeti >= 3.1
            body["job_fields"]["new_name"] = op.input.get("new_name")
        return _finish(routing.network_routing_key(name), body, key)
    return _instance_message(op, status, common, logmsg, key, context)


def _instance_message(
    op: OpCode,
    status: str,
    common: dict[str, Any],
    logmsg: str | None,
    key: str,
    context: Context,
) -> OutgoingMessage:
    is_tag_op = op.op_id in ("OP_TAGS_SET", "OP_TAGS_DEL")
    name = op.input["name"] if is_tag_op else op.input["instance_name"]
    body = {
        "type": routing.OP_STATUS,
        "instance": name,
        "logmsg": logmsg,
        **common,
        # Only a finished opcode has a result; a live one's is null in the job file.
        "result": op.result if status in FINAL_STATUSES else None,
    }
    if op.op_id == "OP_INSTANCE_CREATE" and status == ERROR:
        # The whole input, so that the cloud layer can replay it into RAPI's
        # CreateInstance (opportunistic-locking retry): secrets left out, types kept.
        body["job_fields"] = replayable(op.input)
    elif op.op_id in JOB_FIELDS_OPS:
        body["job_fields"] = {field: op.input.get(field) for field in INSTANCE_JOB_FIELDS}
    elif is_tag_op:
        body["job_fields"] = {"tags": list(op.input.get("tags") or [])}
    details = context.instance_details(name)
    if details is not None:
        # The instance's tags as Ganeti has them now, with every instance operation.
        body["tags"] = details["tags"]
        if op.op_id in DETAILED_OPS and (
            status == SUCCESS or (status in FINAL_STATUSES and op.op_id in SYNCED_ON_FAILURE_OPS)
        ):
            body.update({key: details[key] for key in INSTANCE_DETAIL_FIELDS})
    return _finish(routing.op_routing_key(name), body, key)


def _finish(routing_key: str, body: dict[str, Any], key: str) -> OutgoingMessage:
    return OutgoingMessage(routing_key=routing_key, body=scrub(body), message_id=key)
