"""The consumer's state database: instances, networks, progress, as a cloud layer keeps them.

Messages are applied the way a Synnefo-style backend applies them:
- idempotently: each message_id is applied once (`seen` table, same transaction);
- in event_time order per object: a message older than the last one applied to that
  instance or network is dropped and counted (`stale`), as Synnefo's backend does;
- opcode + final status decide the instance's state (OPER_STATE_FROM_OPCODE below).

Each `apply` is one sqlite transaction; the caller acks the message only after it
returns, so a crash between the two re-delivers a message the `seen` table recognises.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganeti_ext.amqp import routing
from ganeti_ext.consumer.messages import FINAL_STATUSES, HOOK, EventTime, Incoming
from ganeti_ext.errors import GanetiExtError

SCHEMA_VERSION = 1

# Instance states, Synnefo's operstates.
BUILD = "BUILD"
STARTED = "STARTED"
STOPPED = "STOPPED"
ERROR = "ERROR"
DESTROYED = "DESTROYED"
UNKNOWN = "UNKNOWN"  # seen only through messages that do not tell (e.g. set-params)

# The state an instance is in after an opcode succeeds (None: unchanged).
OPER_STATE_FROM_OPCODE: Mapping[str, str | None] = {
    "OP_INSTANCE_CREATE": STARTED,
    "OP_INSTANCE_REMOVE": DESTROYED,
    "OP_INSTANCE_STARTUP": STARTED,
    "OP_INSTANCE_SHUTDOWN": STOPPED,
    "OP_INSTANCE_REBOOT": STARTED,
    "OP_INSTANCE_SET_PARAMS": None,
    "OP_INSTANCE_REINSTALL": None,
    "OP_INSTANCE_MIGRATE": None,
    "OP_INSTANCE_FAILOVER": None,
    "OP_INSTANCE_RENAME": None,
    "OP_INSTANCE_GROW_DISK": None,
}
# Ganeti's answers when removing an instance that is already gone.
_ALREADY_GONE = ("does not exist", "not known", "unknown instance")

# Counters kept in the database (for tests, the benchmark and admins).
APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
DEAD_LETTERED = "dead_lettered"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,                 -- BUILD STARTED STOPPED ERROR DESTROYED UNKNOWN
    ganeti_status TEXT,                  -- admin state seen by hooks/reconcile (up, down)
    nics TEXT NOT NULL DEFAULT '[]',     -- JSON [{name network ip mac mode link uuid firewall}]
    disks TEXT NOT NULL DEFAULT '[]',    -- JSON [{name, size, uuid}]
    hvparams TEXT NOT NULL DEFAULT '{}', -- JSON
    beparams TEXT NOT NULL DEFAULT '{}', -- JSON
    tags TEXT NOT NULL DEFAULT '[]',     -- JSON
    last_job_id TEXT,
    last_operation TEXT,
    last_status TEXT,
    last_logmsg TEXT,
    error TEXT,                          -- the last failed operation and its message
    event_sec INTEGER NOT NULL DEFAULT 0,  -- event_time of the last job message applied
    event_usec INTEGER NOT NULL DEFAULT 0,
    hook_sec INTEGER NOT NULL DEFAULT 0,   -- event_time of the last hook message applied
    hook_usec INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS networks (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,                 -- PENDING ACTIVE ERROR DELETED UNKNOWN
    subnet TEXT, gateway TEXT, subnet6 TEXT, gateway6 TEXT,
    groups TEXT NOT NULL DEFAULT '[]',   -- JSON: node groups it is connected to
    last_job_id TEXT,
    last_operation TEXT,
    last_status TEXT,
    last_logmsg TEXT,
    error TEXT,
    event_sec INTEGER NOT NULL DEFAULT 0,
    event_usec INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS progress (
    instance TEXT PRIMARY KEY,
    last_type TEXT NOT NULL,
    copy_progress REAL,                  -- percent of the image copied
    copy_position INTEGER,
    copy_total INTEGER,
    task TEXT,                           -- the last image-helper task and its subtype
    subtype TEXT,
    messages TEXT NOT NULL DEFAULT '[]', -- JSON: the last info/error messages
    error TEXT,
    event_sec INTEGER NOT NULL DEFAULT 0,
    event_usec INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS clusters (
    name TEXT PRIMARY KEY,
    last_operation TEXT,
    last_status TEXT,
    last_job_id TEXT,
    event_sec INTEGER NOT NULL DEFAULT 0,
    event_usec INTEGER NOT NULL DEFAULT 0,
    last_heartbeat REAL,                 -- when this consumer last received a heartbeat
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    message_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    outcome TEXT NOT NULL,               -- applied or stale
    received_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_received ON seen (received_at);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class StateError(GanetiExtError):
    """The state database cannot be opened or has an unknown layout."""


@dataclass(frozen=True)
class Instance:
    name: str
    state: str
    ganeti_status: str | None
    nics: list[dict[str, Any]]
    disks: list[dict[str, Any]]
    hvparams: dict[str, Any]
    beparams: dict[str, Any]
    tags: list[str]
    last_job_id: str | None
    last_operation: str | None
    last_status: str | None
    last_logmsg: str | None
    error: str | None
    event_time: EventTime
    deleted: bool


def db_path(url: str) -> str:
    """The file of a sqlite:///path URL (sqlite:////abs/path or sqlite:///rel/path).

    `sqlite://` alone (no path) or `:memory:` is an in-memory database, for tests.
    """
    if url in ("sqlite://", ":memory:", "sqlite:///:memory:"):
        return ":memory:"
    if not url.startswith("sqlite:///"):
        raise StateError(f"--db must be sqlite:///path, got {url!r}")
    path = url[len("sqlite:///") :]
    if not path:
        raise StateError("--db sqlite:/// needs a file path")
    return path


class StateDB:
    """The consumer's sqlite database; one connection, used from one thread."""

    def __init__(self, path: str | Path, *, clock: Any = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.conn.row_factory = sqlite3.Row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
            row = self.conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        except sqlite3.Error as err:
            raise StateError(f"cannot open state database {self.path}: {err}") from None
        if row is None:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        elif row["value"] != str(SCHEMA_VERSION):
            raise StateError(
                f"{self.path}: schema version {row['value']}, this snf-events knows "
                f"{SCHEMA_VERSION}"
            )

    @classmethod
    def from_url(cls, url: str) -> StateDB:
        return cls(db_path(url))

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # -- applying messages ------------------------------------------------------------
    def apply(self, message: Incoming) -> str:
        """Apply one checked message; returns APPLIED, DUPLICATE or STALE."""
        now = self._clock()
        with self.transaction() as conn:
            seen = conn.execute(
                "SELECT 1 FROM seen WHERE message_id = ?", (message.message_id,)
            ).fetchone()
            if seen is not None:
                _bump(conn, DUPLICATE)
                return DUPLICATE
            applied = _APPLIERS[message.type](conn, message, now)
            outcome = APPLIED if applied else STALE
            conn.execute(
                "INSERT INTO seen (message_id, type, routing_key, outcome, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (message.message_id, message.type, message.routing_key, outcome, now),
            )
            _bump(conn, outcome)
        return outcome

    def count_dead_letter(self) -> None:
        with self.transaction() as conn:
            _bump(conn, DEAD_LETTERED)

    def prune_seen(self, older_than_s: float) -> int:
        """Forget message ids received more than `older_than_s` ago; returns how many."""
        with self.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM seen WHERE received_at < ?", (self._clock() - older_than_s,)
            )
            return cursor.rowcount

    # -- reading ----------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT name, value FROM counters").fetchall()
        result = {APPLIED: 0, DUPLICATE: 0, STALE: 0, DEAD_LETTERED: 0}
        result.update({row["name"]: row["value"] for row in rows})
        return result

    def instance(self, name: str) -> Instance | None:
        row = self.conn.execute("SELECT * FROM instances WHERE name = ?", (name,)).fetchone()
        return None if row is None else _instance_from_row(row)

    def instances(self, *, include_deleted: bool = False) -> list[Instance]:
        query = "SELECT * FROM instances"
        if not include_deleted:
            query += " WHERE deleted = 0"
        rows = self.conn.execute(query + " ORDER BY name").fetchall()
        return [_instance_from_row(row) for row in rows]

    def network(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM networks WHERE name = ?", (name,)).fetchone()
        return None if row is None else _decoded(row, ("groups",))

    def progress(self, instance: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM progress WHERE instance = ?", (instance,)).fetchone()
        return None if row is None else _decoded(row, ("messages",))

    def cluster(self, name: str) -> dict[str, Any] | None:
        row = self.conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
        return None if row is None else dict(row)

    def seen_count(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM seen").fetchone()[0]

    # -- fixing from Ganeti (reconcile) -----------------------------------------------
    def upsert_instance(self, name: str, **fields: Any) -> None:
        """Set an instance's columns (reconcile --fix); creates the row when missing."""
        allowed = {
            "state",
            "ganeti_status",
            "nics",
            "disks",
            "hvparams",
            "beparams",
            "tags",
            "deleted",
            "error",
        }
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"not instance columns: {sorted(unknown)}")
        values = {
            key: json.dumps(value) if key in _JSON_COLUMNS else value
            for key, value in fields.items()
        }
        with self.transaction() as conn:
            _ensure_instance(conn, name, fields.get("state", UNKNOWN), self._clock())
            _update(conn, "instances", "name", name, values, self._clock())


_JSON_COLUMNS = ("nics", "disks", "hvparams", "beparams", "tags", "groups", "messages")


def _decoded(row: sqlite3.Row, json_columns: Sequence[str]) -> dict[str, Any]:
    result = dict(row)
    for column in json_columns:
        result[column] = json.loads(result[column])
    return result


def _instance_from_row(row: sqlite3.Row) -> Instance:
    return Instance(
        name=row["name"],
        state=row["state"],
        ganeti_status=row["ganeti_status"],
        nics=json.loads(row["nics"]),
        disks=json.loads(row["disks"]),
        hvparams=json.loads(row["hvparams"]),
        beparams=json.loads(row["beparams"]),
        tags=json.loads(row["tags"]),
        last_job_id=row["last_job_id"],
        last_operation=row["last_operation"],
        last_status=row["last_status"],
        last_logmsg=row["last_logmsg"],
        error=row["error"],
        event_time=(row["event_sec"], row["event_usec"]),
        deleted=bool(row["deleted"]),
    )


def _bump(conn: sqlite3.Connection, name: str) -> None:
    conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET value = value + 1",
        (name,),
    )


def _update(
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


def _ensure_instance(conn: sqlite3.Connection, name: str, state: str, now: float) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO instances (name, state, updated_at) VALUES (?, ?, ?)",
        (name, state, now),
    )


def _older(event_time: EventTime | None, sec: int, usec: int) -> bool:
    return event_time is not None and event_time < (sec, usec)


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
    if row is not None and _older(message.event_time, row["event_sec"], row["event_usec"]):
        return False
    if row is None:
        _ensure_instance(conn, name, BUILD if opcode == "OP_INSTANCE_CREATE" else UNKNOWN, now)
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
    _update(conn, "instances", "name", name, values, now)
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


NIC_KEYS = ("name", "network", "ip", "mac", "mode", "link", "uuid", "firewall")


def _nic(nic: Mapping[str, Any]) -> dict[str, Any]:
    return {key: nic.get(key) for key in NIC_KEYS}


_NETWORK_STATE_FROM_OPCODE = {"OP_NETWORK_ADD": "ACTIVE", "OP_NETWORK_REMOVE": "DELETED"}


def _apply_network_status(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["network"]
    opcode = body["operation"]
    status = body["status"]
    row = conn.execute("SELECT * FROM networks WHERE name = ?", (name,)).fetchone()
    if row is not None and _older(message.event_time, row["event_sec"], row["event_usec"]):
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
    _update(conn, "networks", "name", name, values, now)
    return True


def _apply_cluster(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["cluster"]
    row = conn.execute("SELECT * FROM clusters WHERE name = ?", (name,)).fetchone()
    if row is None:
        conn.execute("INSERT INTO clusters (name, updated_at) VALUES (?, ?)", (name, now))
    if message.type == routing.HEARTBEAT:
        _update(conn, "clusters", "name", name, {"last_heartbeat": now}, now)
        return True
    if row is not None and _older(message.event_time, row["event_sec"], row["event_usec"]):
        return False
    values: dict[str, Any] = {
        "last_operation": body.get("operation"),
        "last_status": body.get("status"),
        "last_job_id": _job_id(body),
    }
    if message.event_time is not None:
        values["event_sec"], values["event_usec"] = message.event_time
    _update(conn, "clusters", "name", name, values, now)
    return True


_MAX_KEPT_MESSAGES = 20


def _apply_progress(conn: sqlite3.Connection, message: Incoming, now: float) -> bool:
    body = message.body
    name = body["instance"]
    row = conn.execute("SELECT * FROM progress WHERE instance = ?", (name,)).fetchone()
    if row is not None and _older(message.event_time, row["event_sec"], row["event_usec"]):
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
    _update(conn, "progress", "instance", name, values, now)
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
    if row is not None and (
        _older(message.event_time, row["event_sec"], row["event_usec"])
        or _older(message.event_time, row["hook_sec"], row["hook_usec"])
    ):
        return False
    if body.get("hpath") == "instance-rename" and isinstance(body.get("new_name"), str):
        return _rename_instance(conn, name, body["new_name"], message, now)
    if row is None:
        _ensure_instance(conn, name, UNKNOWN, now)
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
    _update(conn, "instances", "name", name, values, now)
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


_APPLIERS = {
    routing.OP_STATUS: _apply_op_status,
    routing.NETWORK_STATUS: _apply_network_status,
    routing.CLUSTER_STATUS: _apply_cluster,
    routing.HEARTBEAT: _apply_cluster,
    HOOK: _apply_hook,
    **{image_type: _apply_progress for image_type in routing.IMAGE_TYPES},
}
