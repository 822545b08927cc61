"""Turns a job file's new content into messages in the outbox and a state record.

The order is what makes eventd lose nothing: messages are durable in the outbox before
the state database says their statuses were handled. A crash in between only rebuilds
the same messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ganeti_ext.errors import GanetiExtError
from ganeti_ext.eventd.state import JobRecord, StateDB
from ganeti_ext.events import messages, transitions
from ganeti_ext.events.jobfile import Job, Timestamp
from ganeti_ext.spool import OutgoingMessage, Spool

log = logging.getLogger(__name__)


def received_us(job: Job) -> int | None:
    """The job's received time in microseconds: tells a job from a reused id."""
    stamp = job.received_timestamp
    return None if stamp is None else stamp[0] * 1_000_000 + stamp[1]


def latest_second(job: Job) -> int:
    stamps: list[Timestamp | None] = [
        job.received_timestamp,
        job.start_timestamp,
        job.end_timestamp,
    ]
    for op in job.ops:
        stamps += [op.start_timestamp, op.exec_timestamp, op.end_timestamp]
    return max((stamp[0] for stamp in stamps if stamp is not None), default=0)


def recorded_statuses(record: JobRecord | None, job: Job) -> tuple[str, ...] | None:
    """What was handled for this very job (None: nothing, or the id belonged to another job)."""
    if record is None:
        return None
    received = received_us(job)
    if record.received is not None and received is not None and record.received != received:
        log.info("job %d is a new job with a reused id (cluster re-created?)", job.id)
        return None
    return record.statuses


@dataclass
class Stats:
    jobs: int = 0
    messages: int = 0
    skipped: int = 0


@dataclass
class Processor:
    """Diffs jobs against the state DB and spools their messages (batched on request)."""

    state: StateDB
    outbox: Spool
    context: Callable[[], messages.Context]
    batch_size: int = 1  # >1 during catch-up and bursts: one flush and one commit per batch
    # Live bursts: flush a batch once its oldest change waited this long (seconds), so
    # batching saves fsyncs without adding more than this to any message's latency.
    max_delay: float | None = None
    # Called once messages are durable in the outbox (the daemon wakes its drainer).
    on_spooled: Callable[[], None] | None = None
    stats: Stats = field(default_factory=Stats)
    _first_pending: float = 0.0
    _batched: dict[int, Job] = field(default_factory=dict)  # latest of each job in the batch
    _pending_messages: list[OutgoingMessage] = field(default_factory=list)
    _pending_records: list[tuple[Job, bool]] = field(default_factory=list)

    def handle(
        self,
        job: Job,
        *,
        publish: bool,
        forget_recorded: bool = False,
        history: bool = False,
    ) -> int:
        """Spool the messages for `job`'s changes (none when not `publish`); return how many.

        `history` (live watching): also the statuses an opcode went through unseen
        since it was last handled (or ever, for a job seen for the first time), in
        order, as `transitions.changes` dates them from the file. Without it
        (catch-up, failover replay): only each changed opcode's current status.
        """
        record = self.state.get(job.id)
        recorded = None if forget_recorded else recorded_statuses(record, job)
        batched = self._batched.get(job.id)
        if batched is not None and not forget_recorded and received_us(batched) == received_us(job):
            recorded = batched.statuses  # handled in this batch, not recorded yet
        found = transitions.changes(recorded, job, history=history)
        if not found:
            if record is not None and record.quiet and publish:
                self._pending_records.append((job, False))
                self._maybe_flush()
            return 0
        built = []
        if publish:
            context = self.context()
            for op_index, status in found:
                try:
                    message = messages.build(job, op_index, status, context)
                except GanetiExtError as err:
                    log.warning(
                        "job %d op %d: no message for %s: %s", job.id, op_index, status, err
                    )
                    continue
                if message is not None:
                    op_id = job.ops[op_index].op_id
                    log.info(
                        "job %d op %d %s %s -> %s",
                        job.id,
                        op_index,
                        op_id,
                        status,
                        message.routing_key,
                    )
                    built.append(message)
        self.stats.jobs += 1
        self.stats.messages += len(built)
        self._pending_messages.extend(built)
        self._pending_records.append((job, not publish))
        self._batched[job.id] = job
        self._maybe_flush()
        return len(built)

    def _maybe_flush(self) -> None:
        pending = len(self._pending_records)
        if pending == 1:
            self._first_pending = time.monotonic()
        if pending >= self.batch_size or (
            self.max_delay is not None and time.monotonic() - self._first_pending >= self.max_delay
        ):
            self.flush()

    def flush(self) -> None:
        """Make the batched messages durable, then record their jobs."""
        if self._pending_messages:
            if len(self._pending_messages) == 1:
                self.outbox.put(self._pending_messages[0])
            else:
                self.outbox.put_many(self._pending_messages)
            if self.on_spooled is not None:
                self.on_spooled()  # publishing starts while the state is recorded
        for job, quiet in self._pending_records:
            self.state.record(
                job.id,
                received=received_us(job),
                statuses=job.statuses,
                finished=job.finished,
                quiet=quiet,
                changed=latest_second(job),
            )
        if self._pending_records:
            self.state.commit()
        self._pending_messages.clear()
        self._pending_records.clear()
        self._batched.clear()
