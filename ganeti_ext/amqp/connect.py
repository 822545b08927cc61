"""Reaching a broker: the URLs tried in turn, one attempt each, for the publisher and the
consumer alike. kombu's own retry would sleep between attempts; the next URL, then the
caller's backoff (amqp/backoff.py), is the better remedy."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import amqp.exceptions
import kombu
import kombu.exceptions

from ganeti_ext.errors import GanetiExtError
from ganeti_ext.logsetup import redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
# What says "this broker cannot serve us now" while connecting and setting up.
CONNECT_ERRORS = (OSError, kombu.exceptions.KombuError, amqp.exceptions.AMQPError)


class BrokerUnreachable(GanetiExtError, ConnectionError):
    """No broker of the list answered (each URL's reason in the message, passwords masked)."""


def first_reachable(
    urls: Sequence[str],
    prepare: Callable[[Any], T],
    *,
    factory: Callable[..., Any] = kombu.Connection,
    connect_timeout: float = 5.0,
    heartbeat: float = 0,
    also: tuple[type[BaseException], ...] = (),
) -> tuple[Any, T]:
    """The first connection of `urls` that connects and that `prepare` (channel, exchange,
    confirms...) accepts, with what `prepare` returned; BrokerUnreachable when none does.
    `also`: further exceptions of `prepare` that mean "try the next one"."""
    failures = []
    for url in urls:
        connection = factory(url, connect_timeout=connect_timeout, heartbeat=heartbeat)
        try:
            connection.ensure_connection(max_retries=0)
            prepared = prepare(connection)
        except (*CONNECT_ERRORS, *also) as err:
            failures.append(f"{redact_url(url)}: {err or type(err).__name__}")
            drop(connection)
            continue
        log.info("connected to AMQP broker %s", redact_url(url))
        return connection, prepared
    raise BrokerUnreachable("no AMQP broker reachable: " + "; ".join(failures))


def release(connection: Any) -> None:
    """Close a healthy connection politely (the close handshake waits for the broker)."""
    try:
        connection.release()
    except Exception:
        log.debug("closing the broker connection failed", exc_info=True)


def drop(connection: Any) -> None:
    """Let go of a connection that failed, stalled or may be gone, without the close
    handshake: on a stalled connection the broker's answer to it never comes, and a
    polite close waited for it forever (found with a relay holding the broker's frames,
    tests/integration/test_amqp.py)."""
    try:
        connection.collect()
    except Exception:
        log.debug("dropping the broker connection failed", exc_info=True)
