"""Which opcode status changes a job file shows, and the job's own time of each change.

Ganeti rewrites a job file 10-15 times while it runs, often with the same statuses: only
a status that differs from the one last handled for that opcode is a change. Everything
here depends only on the job file's content, so a message rebuilt after a crash is the
same message.
"""

from __future__ import annotations

from collections.abc import Sequence

from ganeti_ext.events.jobfile import (
    CANCELED,
    CANCELING,
    ERROR,
    FINAL_STATUSES,
    QUEUED,
    RUNNING,
    SUCCESS,
    WAITING,
    Job,
    OpCode,
    Timestamp,
)

NO_TIME: Timestamp = (0, 0)


# How far along its life an opcode is; statuses before `running` can be skipped over
# between two reads of a job file, and are dated by the file itself.
_PROGRESS = {QUEUED: 0, WAITING: 1, RUNNING: 2, CANCELING: 3, SUCCESS: 4, ERROR: 4, CANCELED: 4}


def changes(
    recorded: Sequence[str] | None, job: Job, *, history: bool = False
) -> list[tuple[int, str]]:
    """(op index, status) for every opcode whose status differs from `recorded`.

    `recorded` holds the status last handled per opcode ("" or missing: none yet).
    Without `history` (start-up catch-up) this yields, for a finished opcode, only its
    final status and, for a live one, its current status: what was missed, not the
    history. With `history` (live watching), an opcode that jumped over statuses since
    it was last handled also yields the ones skipped that its job file dates (see
    `skipped`), oldest first, before its current status.
    """
    recorded = recorded or ()
    found = []
    for op in job.ops:
        before = recorded[op.index] if op.index < len(recorded) else ""
        if op.status != before:
            if history:
                found += [(op.index, status) for status in skipped(job, op, before)]
            found.append((op.index, op.status))
    return found


def skipped(job: Job, op: OpCode, before: str) -> list[str]:
    """The statuses `op` went through after `before` ("": none) and before its current one.

    Only queued, waiting and running, and only those the job file dates: queued by the
    job's received_timestamp, waiting by the op's start_timestamp, running by its
    exec_timestamp (an op canceled while queued has no start_timestamp: no waiting).
    """
    start = _PROGRESS.get(before, -1)
    end = _PROGRESS[op.status]
    dated = (
        (QUEUED, job.received_timestamp),
        (WAITING, op.start_timestamp),
        (RUNNING, op.exec_timestamp),
    )
    return [
        status for status, stamp in dated if start < _PROGRESS[status] < end and stamp is not None
    ]


def event_time(job: Job, op: OpCode, status: str) -> Timestamp:
    """The job's own timestamp for `op` reaching `status` (falling back to earlier ones)."""
    if status == QUEUED:
        candidates = (job.received_timestamp,)
    elif status == WAITING:
        candidates = (op.start_timestamp, job.received_timestamp)
    elif status == RUNNING:
        candidates = (op.exec_timestamp, op.start_timestamp, job.received_timestamp)
    elif status in (SUCCESS, ERROR, CANCELED, CANCELING):
        candidates = (
            op.end_timestamp,
            job.end_timestamp,
            op.exec_timestamp,
            op.start_timestamp,
            job.received_timestamp,
        )
    else:
        raise ValueError(f"unknown status {status!r}")
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return NO_TIME


def log_message(op: OpCode, status: str, when: Timestamp) -> str | None:
    """The text of the last log entry at or before `when` (the last one for a final status)."""
    if status in FINAL_STATUSES:
        return op.log[-1].text if op.log else None
    chosen = None
    for entry in op.log:
        if entry.timestamp <= when:
            chosen = entry.text
    return chosen
