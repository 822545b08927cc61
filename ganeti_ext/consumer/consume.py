"""The consume loop of `snf-events consume`: deliveries in, state database, acks out.

`Handler.handle` is the whole per-message decision and needs no broker: decode and
check (dead-letter on failure), apply in one transaction, then say "ack". The loop
around it only talks to kombu: it acks after the commit, rejects without requeue
(the broker moves the message to `<queue>-dl`), and reconnects with backoff when the
broker goes away. A database failure is not the message's fault: the loop stops
without acking, and the broker redelivers the message to the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import kombu
import kombu.exceptions

from ganeti_ext.amqp.backoff import Backoff
from ganeti_ext.amqp.connect import drop, first_reachable, release
from ganeti_ext.consumer import messages, topology
from ganeti_ext.consumer.state import StateDB

log = logging.getLogger(__name__)

ACK = "ack"
REJECT = "reject"
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


@dataclass(frozen=True)
class Decision:
    action: str  # ACK or REJECT
    outcome: str  # applied, duplicate, stale, or the rejection
    reason: str = ""


class Handler:
    """Decides about one delivery and applies it."""

    def __init__(self, db: StateDB, validator: messages.SchemaValidator | None = None) -> None:
        self.db = db
        self.validator = validator

    def handle(self, raw: bytes | str, routing_key: str, message_id: str | None) -> Decision:
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        try:
            incoming = messages.decode(
                raw, routing_key=routing_key, message_id=message_id, validator=self.validator
            )
        except messages.Rejected as rejected:
            self.db.count_dead_letter()
            return Decision(REJECT, "dead-lettered", rejected.reason)
        outcome = self.db.apply(incoming)
        return Decision(ACK, outcome)


@dataclass
class Stats:
    handled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def add(self, decision: Decision) -> None:
        self.handled += 1
        self.outcomes[decision.outcome] = self.outcomes.get(decision.outcome, 0) + 1


@dataclass(frozen=True)
class LoopLimits:
    """When a run ends by itself (tests, one-shot runs); all None: run until stopped."""

    max_messages: int | None = None
    idle_exit: float | None = None  # seconds without a delivery


def connect(
    urls: Sequence[str], *, connect_timeout: float = 5.0, heartbeat: float = 30
) -> kombu.Connection:
    """The first broker of `urls` that answers (BrokerUnreachable, a ConnectionError,
    naming each URL without its password, when none does)."""
    connection, _ = first_reachable(
        urls, lambda _connection: None, connect_timeout=connect_timeout, heartbeat=heartbeat
    )
    return connection


def run(
    connect_to: Callable[[], kombu.Connection],
    handler: Handler,
    *,
    limits: LoopLimits = LoopLimits(),
    prefetch: int = 100,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    queue_prefix: str = topology.QUEUE_PREFIX,
) -> Stats:
    """Consume until `stop()`, a limit is reached, or (with no limits) forever.

    Reconnects with exponential backoff when the broker goes away; a broker that cannot
    be reached at all when a limit is set ends the run with ConnectionError, so tests
    and one-shot runs fail loudly instead of waiting forever.
    """
    stats = Stats()
    backoff = Backoff(BACKOFF_START, BACKOFF_MAX)
    while not stop():
        try:
            connection = connect_to()
        except ConnectionError:
            if limits.idle_exit is not None or limits.max_messages is not None:
                raise
            delay = backoff.next_delay()
            log.warning("broker unreachable; retrying in %.0f s", delay)
            sleep(delay)
            continue
        try:
            finished = _consume(connection, handler, stats, limits, prefetch, stop, queue_prefix)
        except (*connection.connection_errors, *connection.channel_errors, OSError) as err:
            drop(connection)
            delay = backoff.next_delay()
            log.warning("lost the broker (%s); reconnecting in %.0f s", err, delay)
            sleep(delay)
            continue
        except BaseException:
            drop(connection)
            raise
        release(connection)
        backoff.reset()
        if finished:
            break
    return stats


def _consume(
    connection: kombu.Connection,
    handler: Handler,
    stats: Stats,
    limits: LoopLimits,
    prefetch: int,
    stop: Callable[[], bool],
    queue_prefix: str,
) -> bool:
    """Consume on one connection; True when a limit or stop() ended the run."""
    channel = connection.channel()
    queues = topology.declare(channel, queue_prefix)
    done = False

    def on_message(message: Any) -> None:
        nonlocal done
        routing_key = message.delivery_info.get("routing_key", "")
        message_id = message.properties.get("message_id")
        decision = handler.handle(message.body, routing_key, message_id)
        if decision.action == ACK:
            message.ack()
            log.debug("%s %s: %s", routing_key, message_id, decision.outcome)
            if decision.outcome == "stale":
                log.info(
                    "dropped stale message %s on %s (older than the state)", message_id, routing_key
                )
        else:
            message.reject(requeue=False)
            log.warning(
                "dead-lettered message %s on %s: %s", message_id, routing_key, decision.reason
            )
        stats.add(decision)
        if limits.max_messages is not None and stats.handled >= limits.max_messages:
            done = True

    consumer = kombu.Consumer(
        channel, queues=queues, on_message=on_message, no_ack=False, prefetch_count=prefetch
    )
    idle_since = time.monotonic()
    with consumer:
        while not done and not stop():
            try:
                connection.drain_events(timeout=0.5)
                idle_since = time.monotonic()
            except TimeoutError:
                connection.heartbeat_check()
                if (
                    limits.idle_exit is not None
                    and time.monotonic() - idle_since >= limits.idle_exit
                ):
                    return True
    return True
