"""What the consumer's state database holds: Synnefo's instance operstates, how opcodes
move them, the counters, and the Instance record read back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ganeti_ext.consumer.messages import EventTime

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

# Counters kept in the database (for tests, the benchmark and admins).
APPLIED = "applied"
DUPLICATE = "duplicate"
STALE = "stale"
DEAD_LETTERED = "dead_lettered"

NIC_KEYS = ("name", "network", "ip", "mac", "mode", "link", "uuid", "firewall")
# Columns stored as JSON text.
JSON_COLUMNS = ("nics", "disks", "hvparams", "beparams", "tags", "groups", "messages")


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
