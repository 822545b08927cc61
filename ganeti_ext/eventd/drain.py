"""Publishes what waits in the outbox and the hand-over spool, oldest first, with confirms.

Messages go out in ordered batches (about BATCH messages, or whatever is pending: a
lone message in an idle daemon is a batch of one, sent at once; a batch file of the
outbox is never split), each published with pipelined confirms; a batch's files are
removed only after the broker confirmed the whole batch. When no broker is reachable,
or any message of a batch was not confirmed, the drainer keeps every file, waits
(exponential backoff) and tries again from the oldest file: nothing is dropped and
order is kept (a re-sent message is byte-identical, with the same message_id). A
corrupt file is moved aside (spool/bad/) and logged, never retried forever nor
silently lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ganeti_ext.amqp.backoff import Backoff
from ganeti_ext.amqp.publisher import Outgoing, PublishError, encode_body
from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.eventd.outbox import file_order, load_messages
from ganeti_ext.spool import OutgoingMessage, Spool, SpoolError

log = logging.getLogger(__name__)

IDLE_RESCAN = 2.0  # seconds: rescan now and then even if nobody woke us
BATCH = 200  # messages published (and confirmed) together, unless one file holds more


class PublisherLike(Protocol):
    def publish_many(self, messages: Sequence[Outgoing]) -> None: ...

    def close(self) -> None: ...


class Drainer:
    """Empties several spools into the broker in one global time order."""

    def __init__(
        self,
        spools: Sequence[Spool],
        publisher: PublisherLike,
        backoff: Backoff,
        *,
        sleep: Callable[[float], bool] | None = None,
        batch_size: int = BATCH,
    ) -> None:
        self.spools = list(spools)
        self.publisher = publisher
        self.backoff = backoff
        self.wake = threading.Event()
        self.stopping = threading.Event()
        # sleep(seconds) -> True if asked to stop meanwhile; tests replace it.
        self._sleep = sleep or self.stopping.wait
        self.batch_size = max(1, batch_size)
        self.published = 0
        self.batches = 0
        self.quarantined = 0
        self.broker_ok: bool | None = None

    def pending(self) -> list[tuple[Spool, Path]]:
        found = [(spool, path) for spool in self.spools for path in spool.pending()]
        found.sort(key=lambda item: file_order(item[1].name) or (0, 0, 0))
        return found

    def drain_once(self) -> bool:
        """Publish everything pending now; False if the broker failed (retry later)."""
        batch: list[tuple[Spool, Path, list[OutgoingMessage]]] = []
        size = 0
        for spool, path in self.pending():
            if self.stopping.is_set():
                return True
            loaded = self._load(spool, path)
            if not loaded:
                continue
            batch.append((spool, path, loaded))
            size += len(loaded)
            if size >= self.batch_size:
                if not self._publish(batch):
                    return False
                batch, size = [], 0
        return not batch or self._publish(batch)

    def _load(self, spool: Spool, path: Path) -> list[OutgoingMessage]:
        try:
            return load_messages(spool, path)
        except SpoolError as err:
            if path.exists():
                self._quarantine(spool, path, str(err))
            return []  # else another drainer (or a test) took it

    def _quarantine(self, spool: Spool, path: Path, reason: str) -> None:
        log.error("moving corrupt message aside: %s", reason)
        spool.quarantine(path, reason)
        self.quarantined += 1

    def _publish(self, batch: list[tuple[Spool, Path, list[OutgoingMessage]]]) -> bool:
        """Publish one batch and forget its files once confirmed; False if the broker failed."""
        try:
            self.publisher.publish_many(
                [(m.routing_key, m.body, m.message_id, None) for _, _, ms in batch for m in ms]
            )
        except ValidationError:
            # Not JSON we can send (e.g. NaN in a hand-over file): set the culprits
            # aside and send the rest of the batch now, before anything younger.
            sendable = []
            for spool, path, loaded in batch:
                try:
                    for message in loaded:
                        encode_body(message.body)
                except ValidationError as err:
                    self._quarantine(spool, path, f"{path}: {err}")
                else:
                    sendable.append((spool, path, loaded))
            return not sendable or self._publish(sendable)
        except (PublishError, GanetiExtError) as err:
            if self.broker_ok is not False:
                log.error("broker unavailable, keeping messages queued: %s", err)
            self.broker_ok = False
            return False
        for spool, path, loaded in batch:
            spool.done(path)
            for message in loaded:
                log.debug("published %s (%s)", message.message_id, message.routing_key)
            self.published += len(loaded)
        self.batches += 1
        if self.broker_ok is not True:
            log.info("broker reachable again, draining queued messages")
            self.broker_ok = True
        return True

    def run(self) -> None:
        """Loop until `stop`: drain, then wait to be woken (or back off after a failure)."""
        while not self.stopping.is_set():
            self.wake.clear()
            if self.drain_once():
                self.backoff.reset()
                self.wake.wait(IDLE_RESCAN)
            else:
                delay = self.backoff.next_delay()
                log.debug("retrying the broker in %.1f s", delay)
                if self._sleep(delay):
                    break
        self.publisher.close()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
