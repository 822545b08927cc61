"""A publisher that returns only once the broker has taken responsibility for a message.

Reliability choices, all explicit: publisher confirms (py-amqp `confirm_publish`), the
durable exchange declared on (first) publish of each connection, persistent JSON
messages with a message_id (consumers de-duplicate: a retried publish may deliver
twice), broker URLs tried in turn, and one reconnect-and-retry when the connection
turns out to be dead. Not thread-safe: use one Publisher per thread.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from ganeti_ext.amqp.routing import EXCHANGE, EXCHANGE_TYPE
from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.logsetup import redact_url

log = logging.getLogger(__name__)

PERSISTENT = 2


class PublishError(GanetiExtError):
    """The broker did not confirm a message (unreachable, refused, unroutable, timed out)."""


class Publisher:
    """Publishes JSON messages to a topic exchange with publisher confirms."""

    def __init__(
        self,
        urls: Sequence[str],
        exchange: str = EXCHANGE,
        exchange_type: str = EXCHANGE_TYPE,
        *,
        connect_timeout: float = 5.0,
        confirm_timeout: float = 10.0,
        heartbeat: float = 0,
        mandatory: bool = False,
    ) -> None:
        if not urls:
            raise ValueError("Publisher needs at least one broker URL")
        self._urls = tuple(urls)
        self._exchange = kombu.Exchange(
            exchange, type=exchange_type, durable=True, delivery_mode=PERSISTENT
        )
        self._connect_timeout = connect_timeout
        self._confirm_timeout = confirm_timeout
        self._heartbeat = heartbeat
        self._mandatory = mandatory
        self._connection: kombu.Connection | None = None
        self._producer: kombu.Producer | None = None
        self._returned: list[str] = []

    @property
    def connected_url(self) -> str | None:
        """The broker in use, password masked (for logs and status output)."""
        if self._connection is None:
            return None
        return redact_url(self._connection.as_uri(include_password=True))

    def publish(
        self,
        routing_key: str,
        body: Mapping[str, Any],
        message_id: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """Publish `body` as JSON and wait for the broker's confirm; return the message_id.

        Raises PublishError if no broker confirmed the message.
        """
        try:
            payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as err:
            raise ValidationError(f"message body is not plain JSON: {err}") from None
        message_id = message_id or uuid.uuid4().hex
        for attempt in (1, 2):
            producer = self._ensure_producer()
            self._returned.clear()
            try:
                producer.publish(
                    payload,
                    routing_key=routing_key,
                    exchange=self._exchange,
                    declare=[self._exchange],
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=PERSISTENT,
                    message_id=message_id,
                    headers=dict(headers or {}),
                    mandatory=self._mandatory,
                    retry=False,
                    timeout=self._confirm_timeout,
                )
            except amqp.exceptions.MessageNacked:
                self._reset()
                raise PublishError(
                    f"broker refused message {message_id} ({routing_key}) with a nack"
                ) from None
            except self._recoverable_errors() as err:
                where = self.connected_url
                self._reset()
                if attempt == 1:
                    log.warning("publishing to %s failed (%s); reconnecting", where, err)
                    continue
                raise PublishError(
                    f"message {message_id} ({routing_key}) not confirmed by {where}: {err}"
                ) from None
            if self._returned:
                raise PublishError(
                    f"message {message_id} ({routing_key}) was returned unroutable: "
                    f"{self._returned[0]}"
                )
            return message_id
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the broker connection (a later publish reconnects)."""
        self._reset()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _recoverable_errors(self) -> tuple[type[BaseException], ...]:
        # Whatever says "this connection is gone or stuck": a fresh one may work.
        extra: tuple[type[BaseException], ...] = ()
        if self._connection is not None:
            extra = (*self._connection.connection_errors, *self._connection.channel_errors)
        return (OSError, kombu.exceptions.OperationalError, amqp.exceptions.AMQPError, *extra)

    def _ensure_producer(self) -> kombu.Producer:
        if self._producer is not None:
            return self._producer
        failures = []
        for url in self._urls:
            connection = kombu.Connection(
                url,
                connect_timeout=self._connect_timeout,
                heartbeat=self._heartbeat,
                transport_options={"confirm_publish": True},
            )
            try:
                # One attempt per URL: kombu's own retry would sleep between attempts,
                # and the next URL (or the caller's retry policy) is the better remedy.
                connection.ensure_connection(max_retries=0)
                channel = connection.channel()
            except (OSError, kombu.exceptions.KombuError, amqp.exceptions.AMQPError) as err:
                failures.append(f"{redact_url(url)}: {err or type(err).__name__}")
                connection.release()
                continue
            self._connection = connection
            self._producer = kombu.Producer(channel, on_return=self._on_return)
            log.info("connected to AMQP broker %s", self.connected_url)
            return self._producer
        raise PublishError("no AMQP broker reachable: " + "; ".join(failures))

    def _on_return(
        self, exception: BaseException, exchange: str, routing_key: str, message: Any
    ) -> None:
        self._returned.append(f"{exception} (exchange {exchange!r}, key {routing_key!r})")

    def _reset(self) -> None:
        connection, self._connection, self._producer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a dying connection may fail to close; moving on
                log.debug("closing the broker connection failed", exc_info=True)
