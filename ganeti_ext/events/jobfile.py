"""Ganeti job files (queue/job-<id>), parsed from their JSON without Ganeti's own classes.

A job file holds `id`, `ops`, `received_timestamp`, `start_timestamp`, `end_timestamp`
(and fields we ignore); each op holds `input` (the opcode, with OP_ID), `status`,
`result`, `log` ([serial, [sec, usec], type, message] entries) and its
start/exec/end timestamps ([sec, usec] or null). Anything else is a JobFileError: the
caller logs it and moves on, a bad file must never stop the daemon.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ganeti_ext.errors import GanetiExtError

QUEUED = "queued"
WAITING = "waiting"
RUNNING = "running"
CANCELING = "canceling"
CANCELED = "canceled"
SUCCESS = "success"
ERROR = "error"
STATUSES = frozenset({QUEUED, WAITING, RUNNING, CANCELING, CANCELED, SUCCESS, ERROR})
FINAL_STATUSES = frozenset({SUCCESS, ERROR, CANCELED})

MAX_JOB_FILE_BYTES = 64 * 1024 * 1024  # far above any real job; stops a runaway read

_JOB_NAME = re.compile(r"^job-(\d+)\Z")

Timestamp = tuple[int, int]


class JobFileError(GanetiExtError):
    """A file in the queue directory is not a (complete) Ganeti job file."""


@dataclass(frozen=True)
class LogEntry:
    serial: int
    timestamp: Timestamp
    kind: str
    text: str


@dataclass(frozen=True)
class OpCode:
    index: int
    input: dict[str, Any]
    status: str
    result: Any
    log: tuple[LogEntry, ...]
    start_timestamp: Timestamp | None
    exec_timestamp: Timestamp | None
    end_timestamp: Timestamp | None

    @property
    def op_id(self) -> str:
        return self.input["OP_ID"]

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Job:
    id: int
    ops: tuple[OpCode, ...]
    received_timestamp: Timestamp | None
    start_timestamp: Timestamp | None
    end_timestamp: Timestamp | None

    @property
    def finished(self) -> bool:
        return all(op.finished for op in self.ops)

    @property
    def statuses(self) -> tuple[str, ...]:
        return tuple(op.status for op in self.ops)


def job_id_from_name(name: str) -> int | None:
    """123 for "job-123"; None for temporary files (job-123-4-5.tmp) and anything else."""
    match = _JOB_NAME.match(name)
    return int(match.group(1)) if match else None


def read_job_file(path: str, *, expected_id: int | None = None) -> Job:
    """Read and parse a job file; JobFileError if it is unreadable or not a job."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_JOB_FILE_BYTES + 1)
    except FileNotFoundError:
        raise JobFileError(f"{path}: vanished before it could be read") from None
    except OSError as err:
        raise JobFileError(f"{path}: cannot read: {err.strerror}") from None
    if len(data) > MAX_JOB_FILE_BYTES:
        raise JobFileError(f"{path}: larger than {MAX_JOB_FILE_BYTES} bytes, not a job file")
    return parse_job(data, where=path, expected_id=expected_id)


def parse_job(data: bytes | str, *, where: str = "<job>", expected_id: int | None = None) -> Job:
    """The job in a job file's content."""
    if not data:
        raise JobFileError(f"{where}: empty file")
    try:
        raw = json.loads(data)
    except UnicodeDecodeError:
        raise JobFileError(f"{where}: not UTF-8 text") from None
    except ValueError as err:
        raise JobFileError(f"{where}: not JSON (truncated?): {err}") from None
    if not isinstance(raw, dict):
        raise JobFileError(f"{where}: not a JSON object")
    job_id = _job_id(raw.get("id"), where)
    if expected_id is not None and job_id != expected_id:
        raise JobFileError(f"{where}: holds job {job_id}, not {expected_id}")
    ops_raw = raw.get("ops")
    if not isinstance(ops_raw, list) or not ops_raw:
        raise JobFileError(f"{where}: job {job_id} has no list of opcodes")
    ops = tuple(_opcode(index, op, where) for index, op in enumerate(ops_raw))
    return Job(
        id=job_id,
        ops=ops,
        received_timestamp=_timestamp(raw.get("received_timestamp"), where, "received"),
        start_timestamp=_timestamp(raw.get("start_timestamp"), where, "start"),
        end_timestamp=_timestamp(raw.get("end_timestamp"), where, "end"),
    )


def _job_id(value: Any, where: str) -> int:
    # Ganeti 2.x wrote ids as strings, 3.0 writes integers; accept both.
    if isinstance(value, bool):
        raise JobFileError(f"{where}: job id is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise JobFileError(f"{where}: missing or invalid job id")


def _timestamp(value: Any, where: str, what: str) -> Timestamp | None:
    if value is None:
        return None
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(part, int | float) and not isinstance(part, bool) for part in value)
    ):
        return (int(value[0]), int(value[1]))
    raise JobFileError(f"{where}: {what} timestamp is not [seconds, microseconds]")


def _opcode(index: int, raw: Any, where: str) -> OpCode:
    here = f"{where}: op {index}"
    if not isinstance(raw, dict):
        raise JobFileError(f"{here}: not a JSON object")
    op_input = raw.get("input")
    if not isinstance(op_input, dict) or not isinstance(op_input.get("OP_ID"), str):
        raise JobFileError(f"{here}: input has no OP_ID")
    status = raw.get("status")
    if status not in STATUSES:
        raise JobFileError(f"{here}: unknown status {status!r}")
    log_raw = raw.get("log", [])
    if not isinstance(log_raw, list):
        raise JobFileError(f"{here}: log is not a list")
    return OpCode(
        index=index,
        input=op_input,
        status=status,
        result=raw.get("result"),
        log=tuple(_log_entry(entry, here) for entry in log_raw),
        start_timestamp=_timestamp(raw.get("start_timestamp"), here, "start"),
        exec_timestamp=_timestamp(raw.get("exec_timestamp"), here, "exec"),
        end_timestamp=_timestamp(raw.get("end_timestamp"), here, "end"),
    )


def _log_entry(raw: Any, where: str) -> LogEntry:
    if not isinstance(raw, list) or len(raw) != 4 or not isinstance(raw[0], int):
        raise JobFileError(f"{where}: log entry is not [serial, timestamp, type, message]")
    timestamp = _timestamp(raw[1], where, "log")
    if timestamp is None:
        raise JobFileError(f"{where}: log entry without a timestamp")
    text = raw[3]
    if not isinstance(text, str):
        # Some entry types (e.g. remote-import) carry a structure, not a line of text.
        text = json.dumps(text, sort_keys=True, separators=(",", ":"))
    return LogEntry(serial=raw[0], timestamp=timestamp, kind=str(raw[2]), text=text)
