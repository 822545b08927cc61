"""What upstream Synnefo's Cyclades does with each message it consumes: a model of its
acceptance rules, written from its code (grnet/synnefo, snf-cyclades-app):

- synnefo/logic/queues.py: the queues and their exact binding keys per prefix;
- synnefo/logic/callbacks.py: handle_message_delivery (a KeyError or ValueError acks the
  message away: lost; any other exception rejects it to the dead-letter queue),
  instance_from_msg, network_from_msg, if_update_required (event_time), update_db
  (including the opportunistic-locking retry), update_network, update_cluster,
  update_build_progress;
- synnefo/logic/backend.py: process_op_status, parse_instance_nics,
  parse_instance_disks, process_create_progress, create_instance_diagnostic;
- synnefo/logic/rapi.py: GanetiRapiClient.CreateInstance (the body of the replay).

`judge(routing_key, body)` says what Cyclades would do: APPLIED, IGNORED (acked on
purpose, e.g. a cluster op other than OP_CLUSTER_SET_PARAMS), LOST (acked after a
KeyError/ValueError: the update silently missing) or DEAD (dead-lettered). Names are the
cloud layer's choice (Cyclades makes `snf-<id>`, `snf-net-<id>`, `snf-nic-<id>`) and
Ganeti passes them through, so the model does not check naming schemes.

A documentation of the contract itself is docs/amqp-contract.md; this module is only a
test's yardstick.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

APPLIED, IGNORED, LOST, DEAD = "applied", "ignored", "lost", "dead-lettered"
BACKEND_STATUSES = ("queued", "waiting", "canceling", "running", "canceled", "success", "error")
PROGRESS_TYPES = (
    "image-copy-progress",
    "image-error",
    "image-info",
    "image-warning",
    "image-helper",
)
FIREWALL_PROFILES = ("protected", "unprotected", "limited")
ECODE_TEMP_NORES = "temp_insufficient_resources"


class _Lost(Exception):
    """KeyError/ValueError inside a handler: upstream acks (its nack is an ack)."""


class _Dead(Exception):
    """Any other exception: upstream rejects to the dead-letter queue."""


def bindings(prefix: str = "snf") -> dict[str, str]:
    """Exact routing key -> handler, as snf-dispatcher binds its queues (queues.py)."""
    return {
        f"ganeti.{prefix}.event.op": "update_db",
        f"ganeti.{prefix}.event.network": "update_network",
        f"ganeti.{prefix}.event.progress": "update_build_progress",
        "ganeti.event.cluster": "update_cluster",
        "eventd.heartbeat": "heartbeat",
    }


def judge(routing_key: str, body: Any, prefix: str = "snf") -> tuple[str, str]:
    """(outcome, why) for one delivery."""
    handler = bindings(prefix).get(routing_key)
    if handler is None:
        return LOST, f"no dispatcher queue is bound to {routing_key!r}"
    if not isinstance(body, dict):
        return LOST, "not a JSON object"
    try:
        outcome = _HANDLERS[handler](body)
    except _Lost as why:
        return LOST, str(why)
    except _Dead as why:
        return DEAD, str(why)
    return outcome


def _need(body: Mapping[str, Any], key: str) -> Any:
    if key not in body:
        raise _Lost(f"KeyError: {key}")
    return body[key]


def _event_time(body: Mapping[str, Any]) -> None:
    value = _need(body, "event_time")
    if not (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and value[0] >= 0
        and 0 <= value[1] < 1_000_000
    ):
        raise _Lost(f"malformed event_time {value!r}")  # if_update_required: KeyError


def _status(body: Mapping[str, Any]) -> str:
    status = _need(body, "status")
    if status not in BACKEND_STATUSES:
        raise _Dead(f"InvalidBackendMsgError: status {status!r}")
    return status


def update_db(body: Mapping[str, Any]) -> tuple[str, str]:
    _need(body, "instance")
    _event_time(body)
    if _need(body, "type") != "ganeti-op-status":
        return IGNORED, "not a ganeti-op-status"
    operation = _need(body, "operation")
    status = _status(body)
    job_id = _need(body, "jobId")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id <= 0:
        raise _Dead(f"jobId {job_id!r} is not a positive integer")
    logmsg = _need(body, "logmsg")
    if logmsg is not None and not isinstance(logmsg, str):
        raise _Dead("logmsg is neither text nor null")
    job_fields = body.get("job_fields", {})
    if not isinstance(job_fields, dict):
        raise _Dead("job_fields is not an object")
    result = body.get("result", [])
    if (
        operation == "OP_INSTANCE_CREATE"
        and status == "error"
        and job_fields.get("opportunistic_locking")
    ):
        try:
            code = result[1][1]
        except IndexError:
            code = None
        except TypeError:
            raise _Dead("result of a failed create is not indexable") from None
        if code == ECODE_TEMP_NORES:
            replay_create(job_fields)  # raises _Dead like Cyclades' TypeError would
            return APPLIED, "retried through RAPI CreateInstance"
    if status in ("success", "error", "canceled"):
        nics = body.get("instance_nics")
        if nics is not None:
            _parse_nics(nics)
        disks = body.get("instance_disks")
        if disks is not None:
            _parse_disks(disks)
        beparams = job_fields.get("beparams")
        if status == "success" and beparams is not None and not isinstance(beparams, dict):
            raise _Dead("job_fields.beparams is not an object")
    return APPLIED, "applied"


def _objects(value: Any, field: str) -> Iterator[tuple[int, dict]]:
    """(index, item) of a list of objects, in order as upstream walks it; _Dead (a
    TypeError upstream) at the first thing that is not one."""
    if not isinstance(value, list):
        raise _Dead(f"{field} is not a list")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Dead(f"{field}[{index}] is not an object")
        yield index, item


def _parse_nics(nics: Any) -> None:
    for index, nic in _objects(nics, "instance_nics"):
        if not isinstance(nic.get("network"), str) or not nic["network"]:
            raise _Lost(f"instance_nics[{index}]: no network (InvalidBackendIdError)")
        firewall = nic.get("firewall")
        if firewall is not None and not isinstance(firewall, str):
            raise _Dead(f"instance_nics[{index}].firewall is not text")


def _parse_disks(disks: Any) -> None:
    for index, disk in _objects(disks, "instance_disks"):
        size = _need(disk, "size")
        if isinstance(size, bool) or not isinstance(size, int):
            raise _Dead(f"instance_disks[{index}].size {size!r} is not whole MiB")


def replay_create(job_fields: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """Cyclades' opportunistic-locking retry of a failed create: the RAPI CreateInstance
    body it sends (and whether as a dry run). Raises _Dead where Cyclades would fail."""
    fields = copy.deepcopy(dict(job_fields))
    fields.pop("OP_ID", None)
    fields.pop("reason", None)
    if fields.pop("iallocator", None) is not None:
        fields.pop("pnode", None)
        fields.pop("snode", None)
    instance_name = fields.pop("instance_name", None)
    name = fields.pop("name", instance_name)
    fields["opportunistic_locking"] = False
    missing = [key for key in ("mode", "disk_template", "disks", "nics") if key not in fields]
    if missing:
        raise _Dead(f"CreateInstance() missing arguments: {', '.join(missing)}")
    dry_run = bool(fields.pop("dry_run", False))
    body = {"__version__": 1, "name": name, **fields}
    return body, dry_run


def update_network(body: Mapping[str, Any]) -> tuple[str, str]:
    _need(body, "network")
    _need(body, "cluster")
    _event_time(body)
    if _need(body, "type") != "ganeti-network-status":
        return IGNORED, "not a ganeti-network-status"
    operation = _need(body, "operation")
    _status(body)
    _need(body, "jobId")
    if operation == "OP_NETWORK_SET_PARAMS":
        job_fields = body.get("job_fields") or {}
        _need(job_fields, "add_reserved_ips")
    else:
        _need(body, "logmsg")
    return APPLIED, "applied"


def update_cluster(body: Mapping[str, Any]) -> tuple[str, str]:
    if not body.get("cluster") or body.get("operation") != "OP_CLUSTER_SET_PARAMS":
        return IGNORED, "only OP_CLUSTER_SET_PARAMS updates a backend"
    return APPLIED, "applied"


def update_build_progress(body: Mapping[str, Any]) -> tuple[str, str]:
    _need(body, "instance")
    _event_time(body)
    kind = _need(body, "type")
    if kind not in PROGRESS_TYPES:
        return IGNORED, f"unknown progress type {kind!r}"
    if kind == "image-copy-progress":
        progress = _need(body, "progress")
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            raise _Dead(f"progress {progress!r} is not a number")
        if progress < 0:
            raise _Lost("negative progress (ValueError)")
        return APPLIED, "build percentage"
    messages = body.get("messages", "")
    if not isinstance(messages, list | str):
        raise _Dead("messages is neither a list nor text")
    if kind == "image-helper" and body.get("subtype") in ("task-start", "task-end"):
        _need(body, "task")
    return APPLIED, "diagnostic"


def heartbeat(body: Mapping[str, Any]) -> tuple[str, str]:
    if not isinstance(body.get("cluster"), str):
        return IGNORED, "invalid heartbeat message"
    return APPLIED, "eventd ok"


_HANDLERS = {
    "update_db": update_db,
    "update_network": update_network,
    "update_cluster": update_cluster,
    "update_build_progress": update_build_progress,
    "heartbeat": heartbeat,
}
