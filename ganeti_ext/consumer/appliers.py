"""How each message type changes the state database's rows (one sqlite transaction,
opened by StateDB.apply). Every applier returns False when the message is older than
what the row already holds (Synnefo's stale check), True once applied."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from ganeti_ext.amqp import routing
from ganeti_ext.consumer.messages import HOOK, EventTime, Incoming
from ganeti_ext.consumer.model import (
    BUILD,
    DESTROYED,
    ERROR,
    NIC_KEYS,
    OPER_STATE_FROM_OPCODE,
    UNKNOWN,
)
from ganeti_ext.events.jobfile import FINAL_STATUSES

# Ganeti's answers when removing an instance that is already gone.
_ALREADY_GONE = ("does not exist", "not known", "unknown instance")


def bump(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )


def update_row(
    conn: sqlite3.Connection,
    table: str,
    key_column: str,
    key: str,
    values: Mapping[str, Any],
    now: float,
) -> None:
    values = {**values, "updated_at": now}
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(
        f"UPDATE {table} SET {assignments} WHERE {key_column} = ?", (*values.values(), key)
    )


def ensure_instance(conn: sqlite3.Connection, name: str, state: str, now: float) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO instances (name, state, updated_at) VALUES (?, ?, ?)",
        (name, state, now),
    )


def _older(event_time: EventTime | None, sec: int, usec: int) -> bool:
    return event_time is not None and event_time < (sec, usec)


def _stale(message: Incoming, row: sqlite3.Row | None) -> bool:
    """Whether the record already holds a newer event than `message` (it arrived late)."""
    return row is not None and _older(message.event_time, row["event_sec"], row["event_usec"])


def _job_id(body: Mapping[str, Any]) -> str | None:
    job_id = body.get("jobId")
    return None if job_id is None else str(job_id)


def _failure(body: Mapping[str, Any]) -> str:
    logmsg = body.get("logmsg") or ""
    text = f"{body['operation']} {body['status']}"
    return f"{text}: {logmsg}" if logmsg else text


# -- per-type appliers: return False when the message is older than the state -----------
def _job_values(message: Incoming) -> dict[str, Any]:
    """The columns every job-status message sets on its instance or network row."""
    body = message.body
    values: dict[str, Any] = {
        "last_job_id": _job_id(body),
        "last_operation": body["operation"],
        "last_status": body["status"],
        "last_logmsg": body.get("logmsg") or None,
    }
    if message.event_time is not None:
        values["event_sec"], values["event_usec"] = message.event_time
    return values


def _apply_op_status(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["instance"]
    opcode = body["operation"]
    status = body["status"]
    row = conn.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
    if _stale(message, row):
        return False
    if row is None:
        ensure_instance(conn, name, BUILD if opcode == "OP_INSTANCE_CREATE" else UNKNOWN, now)
        row = conn.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
    values = _job_values(message)
    if opcode == "OP_INSTANCE_CREATE" and row["deleted"]:
        # The name is reused by a new instance: start from a clean row.
        values.update(deleted=0, state=BUILD, error=None, nics="[]", disks="[]")
        values.update(hvparams="{}", beparams="{}", tags="[]", ganeti_status=None)
    if status not in FINAL_STATUSES:
        if opcode == "OP_INSTANCE_CREATE":
            values["state"] = BUILD
    elif status == "success":
        new_state = OPER_STATE_FROM_OPCODE.get(opcode)
        if new_state is not None:
            values["state"] = new_state
        if opcode == "OP_INSTANCE_REMOVE":
            values["deleted"] = 1
        if opcode in ("OP_INSTANCE_CREATE", "OP_INSTANCE_STARTUP", "OP_INSTANCE_REBOOT"):
            values["error"] = None
    else:
        values["error"] = _failure(body)
        logmsg = (body.get("logmsg") or "").lower()
        if opcode == "OP_INSTANCE_CREATE":
            values["state"] = ERROR
        elif opcode == "OP_INSTANCE_REMOVE" and any(text in logmsg for text in _ALREADY_GONE):
            values.update(state=DESTROYED, deleted=1)
    values.update(_instance_details(body, row))
    update_row(conn, "instances", "name", name, values, now)
    return True


def _instance_details(body: Mapping[str, Any], row: sqlite3.Row) -> dict[str, str]:
    """NICs, disks and parameters a message carries, as JSON columns."""
    details: dict[str, Any] = {}
    job_fields = body.get("job_fields") or {}
    if body.get("status") == "success" and isinstance(job_fields, dict):
        # job_fields are the request: its NIC and disk specs are not what Ganeti made of
        # them (instance_nics/instance_disks below are), and its parameters are only the
        # ones changed, so they are merged into what is known.
        for key in ("hvparams", "beparams"):
            if isinstance(job_fields.get(key), dict) and job_fields[key]:
                details[key] = {**json.loads(row[key]), **job_fields[key]}
    if isinstance(body.get("instance_nics"), list):
        details["nics"] = [_nic(nic) for nic in body["instance_nics"] if isinstance(nic, dict)]
    if isinstance(body.get("instance_disks"), list):
        details["disks"] = [
            {key: disk.get(key) for key in ("name", "size", "uuid")}
            for disk in body["instance_disks"]
            if isinstance(disk, dict)
        ]
    if isinstance(body.get("instance_hvparams"), dict):
        details["hvparams"] = body["instance_hvparams"]
    if isinstance(body.get("tags"), list):
        details["tags"] = [str(tag) for tag in body["tags"]]
    return {key: json.dumps(value, sort_keys=True) for key, value in details.items()}


def _nic(nic: Mapping[str, Any]) -> dict[str, Any]:
    return {key: nic.get(key) for key in NIC_KEYS}


_NETWORK_STATE_FROM_OPCODE = {"OP_NETWORK_ADD": "ACTIVE", "OP_NETWORK_REMOVE": "DELETED"}


def _apply_network_status(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["network"]
    opcode = body["operation"]
    status = body["status"]
    row = conn.execute("SELECT * FROM networks WHERE name = ?", (name,)).fetchone()
    if _stale(message, row):
        return False
    if row is None or (opcode == "OP_NETWORK_ADD" and row["deleted"]):
        conn.execute("DELETE FROM networks WHERE name = ?", (name,))
        state = "PENDING" if opcode == "OP_NETWORK_ADD" else "UNKNOWN"
        conn.execute(
            "INSERT INTO networks (name, state, updated_at) VALUES (?, ?, ?)", (name, state, now)
        )
        row = conn.execute("SELECT * FROM networks WHERE name = ?", (name,)).fetchone()
    values = _job_values(message)
    job_fields = body.get("job_fields") or {}
    if status == "success":
        if opcode in _NETWORK_STATE_FROM_OPCODE:
            values["state"] = _NETWORK_STATE_FROM_OPCODE[opcode]
        if opcode == "OP_NETWORK_REMOVE":
            values["deleted"] = 1
        for key in ("subnet", "gateway", "subnet6", "gateway6"):
            if isinstance(job_fields.get(key), str):
                values[key] = job_fields[key]
        group = job_fields.get("group_name")
        if isinstance(group, str) and opcode in ("OP_NETWORK_CONNECT", "OP_NETWORK_DISCONNECT"):
            groups = set(json.loads(row["groups"]))
            if opcode == "OP_NETWORK_CONNECT":
                groups.add(group)
            else:
                groups.discard(group)
            values["groups"] = json.dumps(sorted(groups))
    elif status in FINAL_STATUSES:
        values["error"] = _failure(body)
        if opcode == "OP_NETWORK_ADD":
            values["state"] = "ERROR"
    update_row(conn, "networks", "name", name, values, now)
    new_name = job_fields.get("new_name")
    if status == "success" and opcode == "OP_NETWORK_RENAME" and isinstance(new_name, str):
        _rename_network(conn, name, new_name, now)
    return True


def _rename_network(conn: sqlite3.Connection, old: str, new: str, now: float) -> None:
    # OP_NETWORK_RENAME (Ganeti >= 3.1). A replay finds the rename done and leaves it.
    taken = conn.execute("SELECT deleted FROM networks WHERE name = ?", (new,)).fetchone()
    if taken is not None and not taken["deleted"]:
        return
    conn.execute("DELETE FROM networks WHERE name = ?", (new,))
    conn.execute("UPDATE networks SET name = ?, updated_at = ? WHERE name = ?", (new, now, old))


def _apply_cluster(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["cluster"]
    row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO clusters (name, updated_at) VALUES (?, ?)", (name, now))
    if message.type == routing.HEARTBEAT:
        update_row(conn, "clusters", "name", name, {"last_heartbeat": now}, now)
        return True
    if _stale(message, row):
        return False
    values: dict[str, Any] = {
        "last_operation": body.get("operation"),
        "last_status": body.get("status"),
        "last_job_id": _job_id(body),
    }
    if message.event_time is not None:
        values["event_sec"], values["event_usec"] = message.event_time
    update_row(conn, "clusters", "name", name, values, now)
    return True


_MAX_KEPT_MESSAGES = 20


def _apply_progress(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["instance"]
    row = conn.execute("SELECT * FROM progress WHERE instance = ?", (name,)).fetchone()
    if _stale(message, row):
        return False
    if row is None:
        conn.execute(
            "INSERT INTO progress (instance, last_type, updated_at) VALUES (?, ?, ?)",
            (name, message.type, now),
        )
    values: dict[str, Any] = {"last_type": message.type}
    if message.event_time is not None:
        values["event_sec"], values["event_usec"] = message.event_time
    if message.type == "image-copy-progress":
        for column, key in (
            ("copy_progress", "progress"),
            ("copy_position", "position"),
            ("copy_total", "total"),
        ):
            if isinstance(body.get(key), int | float) and not isinstance(body.get(key), bool):
                values[column] = body[key]
    else:
        texts = body.get("messages")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list):
            texts = [body["stderr"]] if isinstance(body.get("stderr"), str) else []
        kept = [str(text) for text in texts][-_MAX_KEPT_MESSAGES:]
        values["messages"] = json.dumps(kept)
        if message.type == "image-helper":
            values["subtype"] = body.get("subtype")
            if body.get("task"):
                values["task"] = body.get("task")
        if message.type == "image-error" or body.get("subtype") == "error":
            values["error"] = "; ".join(kept) or "image error"
    update_row(conn, "progress", "instance", name, values, now)
    return True


def _apply_hook(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    """NIC list and admin status after an instance operation, from the post-hook.

    Hooks run before their job finishes, so a hook message never moves the instance's
    event_time: it only refreshes NICs/status when no newer job message was applied.
    """
    body = message.body
    name = body.get("instance")
    if not isinstance(name, str) or not name:
        return _apply_network_hook(conn, message, now)
    row = conn.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
    if _stale(message, row) or (
        row is not None and _older(message.event_time, row["hook_sec"], row["hook_usec"])
    ):
        return False
    if body.get("hpath") == "instance-rename" and isinstance(body.get("new_name"), str):
        return _rename_instance(conn, name, body["new_name"], message, now)
    if row is None:
        ensure_instance(conn, name, UNKNOWN, now)
    values: dict[str, Any] = {}
    if message.event_time is not None:
        values["hook_sec"], values["hook_usec"] = message.event_time
    if isinstance(body.get("status"), str):
        values["ganeti_status"] = body["status"]
    if isinstance(body.get("nics"), list):
        nics = [_nic(nic) for nic in body["nics"] if isinstance(nic, dict)]
        values["nics"] = json.dumps(nics, sort_keys=True)
    if isinstance(body.get("tags"), list):
        values["tags"] = json.dumps([str(tag) for tag in body["tags"]])
    update_row(conn, "instances", "name", name, values, now)
    return True


def _rename_instance(
    conn: sqlite3.Connection, old: str, new: str, message: Incoming, now: float
) -> bool:
    taken = conn.execute("SELECT deleted FROM instances WHERE name = ?", (new,)).fetchone()
    if taken is not None and not taken["deleted"]:
        return True  # already renamed (a replay): nothing to do
    conn.execute("DELETE FROM instances WHERE name = ?", (new,))
    conn.execute("UPDATE instances SET name = ?, updated_at = ? WHERE name = ?", (new, now, old))
    if message.event_time is not None:
        sec, usec = message.event_time
        conn.execute(
            "UPDATE instances SET hook_sec = ?, hook_usec = ? WHERE name = ?", (sec, usec, new)
        )
    return True


def _apply_network_hook(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    # Network hooks add nothing the network job messages do not carry; they are recorded
    # as seen (so replays are recognised) and otherwise left to the job messages.
    return True


APPLIERS = {
    routing.OP_STATUS: _apply_op_status,
    routing.NETWORK_STATUS: _apply_network_status,
    routing.CLUSTER_STATUS: _apply_cluster,
    routing.HEARTBEAT: _apply_cluster,
    HOOK: _apply_hook,
    **{image_type: _apply_progress for image_type in routing.IMAGE_TYPES},
}
