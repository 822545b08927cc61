"""The consumer's state database: instances, networks, progress, as a cloud layer keeps them.

Messages are applied the way a Synnefo-style backend applies them:
- idempotently: each message_id is applied once (`seen` table, same transaction);
- in event_time order per object: a message older than the last one applied to that
  instance or network is dropped and counted (`stale`), as Synnefo's backend does;
- opcode + final status decide the instance's state (model.OPER_STATE_FROM_OPCODE).

Each `apply` is one sqlite transaction; the caller acks the message only after it
returns, so a crash between the two re-delivers a message the `seen` table recognises.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ganeti_ext.consumer.appliers import APPLIERS, bump, ensure_instance, update_row
from ganeti_ext.consumer.messages import Incoming
from ganeti_ext.consumer.model import (  # re-exported: the names callers know state by
    APPLIED,
    BUILD,
    DEAD_LETTERED,
    DESTROYED,
    DUPLICATE,
    ERROR,
    JSON_COLUMNS,
    NIC_KEYS,
    OPER_STATE_FROM_OPCODE,
    STALE,
    STARTED,
    STOPPED,
    UNKNOWN,
    Instance,
)
from ganeti_ext.errors import GanetiExtError

SCHEMA_VERSION = 1

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
                bump(conn, DUPLICATE)
                return DUPLICATE
            applied = APPLIERS[message.type](conn, message, now)
            outcome = APPLIED if applied else STALE
            conn.execute(
                "INSERT INTO seen (message_id, type, routing_key, outcome, received_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (message.message_id, message.type, message.routing_key, outcome, now),
            )
            bump(conn, outcome)
        return outcome

    def count_dead_letter(self) -> None:
        with self.transaction() as conn:
            bump(conn, DEAD_LETTERED)

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
            key: json.dumps(value) if key in JSON_COLUMNS else value
            for key, value in fields.items()
        }
        with self.transaction() as conn:
            ensure_instance(conn, name, fields.get("state", UNKNOWN), self._clock())
            update_row(conn, "instances", "name", name, values, self._clock())


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


__all__ = [
    "APPLIED",
    "BUILD",
    "DEAD_LETTERED",
    "DESTROYED",
    "DUPLICATE",
    "ERROR",
    "NIC_KEYS",
    "OPER_STATE_FROM_OPCODE",
    "STALE",
    "STARTED",
    "STOPPED",
    "UNKNOWN",
    "Instance",
    "StateDB",
    "StateError",
    "db_path",
]
