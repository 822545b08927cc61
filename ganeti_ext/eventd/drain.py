"""Publishes what waits in the outbox and the hand-over spool, oldest first, with confirms.

A message file is removed only after the broker confirmed it. When no broker is
reachable the drainer waits (exponential backoff) and tries again; nothing is dropped,
and order is kept because it always restarts from the oldest file. A corrupt file is
moved aside (spool/bad/) and logged, never retried forever nor silently lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from ganeti_ext.amqp.publisher import PublishError
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.eventd.backoff import Backoff
from ganeti_ext.spool import Spool, SpoolError, name_order

log = logging.getLogger(__name__)

IDLE_RESCAN = 2.0  # seconds: rescan now and then even if nobody woke us


class PublisherLike(Protocol):
    def publish(self, routing_key: str, body: dict, message_id: str | None = None) -> str: ...

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
    ) -> None:
        self.spools = list(spools)
        self.publisher = publisher
        self.backoff = backoff
        self.wake = threading.Event()
        self.stopping = threading.Event()
        # sleep(seconds) -> True if asked to stop meanwhile; tests replace it.
        self._sleep = sleep or self.stopping.wait
        self.published = 0
        self.quarantined = 0
        self.broker_ok: bool | None = None

    def pending(self) -> list[tuple[Spool, Path]]:
        found = [(spool, path) for spool in self.spools for path in spool.pending()]
        found.sort(key=lambda item: name_order(item[1].name) or (0, 0, 0))
        return found

    def drain_once(self) -> bool:
        """Publish everything pending now; False if the broker failed (retry later)."""
        for spool, path in self.pending():
            if self.stopping.is_set():
                return True
            try:
                message = spool.load(path)
            except SpoolError as err:
                if not path.exists():
                    continue  # another drainer (or a test) took it
                log.error("moving corrupt message aside: %s", err)
                spool.quarantine(path, str(err))
                self.quarantined += 1
                continue
            try:
                self.publisher.publish(message.routing_key, message.body, message.message_id)
            except (PublishError, GanetiExtError) as err:
                if self.broker_ok is not False:
                    log.error("broker unavailable, keeping messages queued: %s", err)
                self.broker_ok = False
                return False
            spool.done(path)
            self.published += 1
            if self.broker_ok is not True:
                log.info("broker reachable again, draining queued messages")
                self.broker_ok = True
            log.debug("published %s (%s)", message.message_id, message.routing_key)
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
