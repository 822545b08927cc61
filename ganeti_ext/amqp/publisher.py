"""A publisher that returns only once the broker has taken responsibility for its messages.

Reliability choices, all explicit: publisher confirms (RabbitMQ's confirm mode on the
channel), the durable exchange declared once per connection, persistent JSON messages
with a message_id (consumers de-duplicate: a retried publish may deliver twice), broker
URLs tried in turn, and one reconnect-and-retry when the connection turns out to be dead.

Confirms are pipelined: `publish_many` sends a whole batch without waiting between
messages, then waits until the broker has acked every delivery tag of the batch (single
or `multiple` acks), so a batch costs about one round trip instead of one per message.
A nack, an unroutable return (with `mandatory`, unless the caller takes returns itself:
`on_unroutable`), a confirm timeout or a connection lost
mid-batch fail the whole batch with PublishError: the caller sends the same batch again
(byte-identical messages, same message_ids) later. Not thread-safe: use one Publisher
per thread.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import amqp.exceptions
import kombu
import kombu.exceptions

from ganeti_ext.amqp.connect import BrokerUnreachable, drop, first_reachable, release
from ganeti_ext.amqp.routing import EXCHANGE, EXCHANGE_TYPE
from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.logsetup import redact_url

log = logging.getLogger(__name__)

PERSISTENT = 2
# Transports that cannot confirm and are accepted anyway: kombu's in-process broker
# (tests), where a message is in the queue once basic_publish returns.
UNCONFIRMED_TRANSPORTS = frozenset({"memory"})

# (routing_key, body, message_id, headers): one message of a batch.
Outgoing = tuple[str, Mapping[str, Any], str, "Mapping[str, Any] | None"]


class PublishError(GanetiExtError):
    """The broker did not confirm a message (unreachable, refused, unroutable, timed out)."""


class _Refused(Exception):
    """The broker answered, but not with a confirm: nacks or returns (no point retrying now)."""


class _ConfirmTimeout(Exception):
    """The broker did not settle every delivery tag in time."""


@dataclass(frozen=True)
class Returned:
    """A message the broker handed back unroutable (no queue bound to its key)."""

    message_id: str
    routing_key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.message_id} ({self.routing_key}): {self.reason}"


class Confirms:
    """Delivery tags of one confirm-mode channel and what the broker said about them.

    Tags count the messages published on the channel since `confirm.select`, from 1.
    """

    def __init__(self) -> None:
        self.next_tag = 1
        self.unsettled: set[int] = set()
        self.nacked = 0
        self.returned: list[Returned] = []

    def start_batch(self) -> None:
        self.nacked = 0
        self.returned.clear()

    def sent(self) -> int:
        tag = self.next_tag
        self.next_tag += 1
        self.unsettled.add(tag)
        return tag

    def on_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        self._settle(delivery_tag, multiple)

    def on_nack(self, delivery_tag: int, multiple: bool = False) -> None:
        self.nacked += self._settle(delivery_tag, multiple)

    def on_return(
        self, exception: BaseException, exchange: str, routing_key: str, message: Any
    ) -> None:
        properties = getattr(message, "properties", None) or {}
        message_id = properties.get("message_id", "?") if isinstance(properties, dict) else "?"
        self.returned.append(Returned(message_id, routing_key, str(exception)))

    def _settle(self, delivery_tag: int, multiple: bool) -> int:
        if multiple:
            done = {tag for tag in self.unsettled if tag <= delivery_tag}
            self.unsettled -= done
            return len(done)
        if delivery_tag in self.unsettled:
            self.unsettled.discard(delivery_tag)
            return 1
        return 0


def encode_body(body: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as err:
        raise ValidationError(f"message body is not plain JSON: {err}") from None


class ConfirmChannel:
    """The one place that speaks py-amqp below kombu: a channel in confirm mode that
    publishes persistent JSON messages and collects the broker's acks, nacks and returns
    into `confirms`. Proven against RabbitMQ in tests/integration/test_amqp.py (confirm,
    nack, return, stalled connection); the publisher's unit tests replace it whole.

    On kombu's in-process transport (`confirming` False) a message is in its queue once
    basic_publish returned, and nothing is ever unsettled.
    """

    def __init__(self, channel: Any, *, confirming: bool = True) -> None:
        self._channel = channel
        self.confirms = Confirms()
        self.confirming = confirming
        if confirming:
            channel.confirm_select()
            channel.events["basic_ack"].add(self.confirms.on_ack)
            channel.events["basic_nack"].add(self.confirms.on_nack)
            channel.events["basic_return"].add(self.confirms.on_return)

    def send(
        self,
        exchange: str,
        routing_key: str,
        payload: bytes,
        message_id: str,
        headers: dict[str, Any],
        mandatory: bool,
    ) -> None:
        message = self._channel.prepare_message(
            payload,
            None,
            "application/json",
            "utf-8",
            headers,
            {"delivery_mode": PERSISTENT, "message_id": message_id},
        )
        self._channel.basic_publish(
            message, exchange=exchange, routing_key=routing_key, mandatory=mandatory
        )
        if self.confirming:
            self.confirms.sent()

    def settle(self, timeout: float) -> bool:
        """Take in the broker's answers until every delivery tag is settled (True) or
        `timeout` seconds pass (False). Connection errors propagate."""
        deadline = time.monotonic() + timeout
        while self.confirms.unsettled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._channel.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue
        return True


def open_confirm_channel(connection: Any, channel: Any) -> ConfirmChannel:
    """The channel in confirm mode; PublishError for a transport that cannot confirm."""
    if callable(getattr(channel, "confirm_select", None)):
        return ConfirmChannel(channel)
    transport = getattr(connection, "transport_cls", "?")
    if transport in UNCONFIRMED_TRANSPORTS:
        return ConfirmChannel(channel, confirming=False)
    raise PublishError(f"transport {transport!r} has no publisher confirms")


class Publisher:
    """Publishes JSON messages to a topic exchange with (pipelined) publisher confirms."""

    # How connections are made and their channel put in confirm mode (unit tests
    # substitute a fake broker for both).
    connection_factory: Callable[..., Any] = kombu.Connection
    channel_factory: Callable[[Any, Any], ConfirmChannel] = staticmethod(open_confirm_channel)

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
        on_unroutable: Callable[[Returned], None] | None = None,
    ) -> None:
        """`mandatory` asks the broker to return what no queue is bound for. A return
        fails the batch, unless `on_unroutable` is given: it is then told (once per
        message) and the message counts as settled, since no retry would route it."""
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
        self._on_unroutable = on_unroutable
        self._connection: Any = None  # kombu.Connection (or a test's fake)
        self._channel: ConfirmChannel | None = None

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
        message_id = message_id or uuid.uuid4().hex
        self.publish_many([(routing_key, body, message_id, headers)])
        return message_id

    def publish_many(self, messages: Sequence[Outgoing]) -> None:
        """Publish a batch in order and return once the broker confirmed all of it.

        Raises PublishError if any message of the batch was not confirmed (nacked,
        returned unroutable, timed out, connection lost twice): the caller keeps the
        whole batch and sends it again later. ValidationError (before anything is sent)
        if a body is not plain JSON.
        """
        batch = [
            (routing_key, encode_body(body), message_id, dict(headers or {}))
            for routing_key, body, message_id, headers in messages
        ]
        if not batch:
            return
        for attempt in (1, 2):
            self._ensure_channel()
            try:
                self._send_and_confirm(batch)
            except _Refused as err:
                raise PublishError(f"{self._describe(batch)}: {err}") from None
            except _ConfirmTimeout:
                where = self.connected_url
                unsettled = len(self._channel.confirms.unsettled) if self._channel else len(batch)
                self._reset(stuck=True)
                raise PublishError(
                    f"{self._describe(batch)}: {unsettled} not confirmed by {where} "
                    f"within {self._confirm_timeout:g} s"
                ) from None
            except self._recoverable_errors() as err:
                where = self.connected_url
                self._reset(stuck=True)
                if attempt == 1:
                    log.warning("publishing to %s failed (%s); reconnecting", where, err)
                    continue
                raise PublishError(
                    f"{self._describe(batch)}: not confirmed by {where}: "
                    f"{err or type(err).__name__}"
                ) from None
            return
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

    # --- internals ------------------------------------------------------------------------

    @staticmethod
    def _describe(batch: Sequence[tuple[str, bytes, str, dict]]) -> str:
        routing_key, _, message_id, _ = batch[0]
        if len(batch) == 1:
            return f"message {message_id} ({routing_key})"
        return f"batch of {len(batch)} messages from {message_id} ({routing_key})"

    def _send_and_confirm(self, batch: Sequence[tuple[str, bytes, str, dict]]) -> None:
        channel = self._channel
        assert channel is not None  # _ensure_channel ran
        confirms = channel.confirms
        confirms.start_batch()
        for routing_key, payload, message_id, headers in batch:
            channel.send(
                self._exchange.name, routing_key, payload, message_id, headers, self._mandatory
            )
        if not channel.settle(self._confirm_timeout):
            raise _ConfirmTimeout()
        problems = []
        if confirms.nacked:
            problems.append(f"{confirms.nacked} of {len(batch)} nacked by the broker")
        if confirms.returned and self._on_unroutable is not None:
            for returned in confirms.returned:
                self._on_unroutable(returned)
        elif confirms.returned:
            problems.append(
                f"{len(confirms.returned)} returned unroutable (first: {confirms.returned[0]})"
            )
        if problems:
            raise _Refused("; ".join(problems))

    def _recoverable_errors(self) -> tuple[type[BaseException], ...]:
        # Whatever says "this connection is gone or stuck": a fresh one may work.
        extra: tuple[type[BaseException], ...] = ()
        if self._connection is not None:
            extra = (
                *getattr(self._connection, "connection_errors", ()),
                *getattr(self._connection, "channel_errors", ()),
            )
        return (OSError, kombu.exceptions.OperationalError, amqp.exceptions.AMQPError, *extra)

    def _ensure_channel(self) -> None:
        if self._channel is not None:
            return

        def prepare(connection: Any) -> ConfirmChannel:
            channel = connection.channel()
            confirm_channel = self.channel_factory(connection, channel)
            self._exchange(channel).declare()
            return confirm_channel

        try:
            connection, channel = first_reachable(
                self._urls,
                prepare,
                factory=self.connection_factory,
                connect_timeout=self._connect_timeout,
                heartbeat=self._heartbeat,
                also=(PublishError,),
            )
        except BrokerUnreachable as err:
            raise PublishError(str(err)) from None
        self._connection, self._channel = connection, channel

    def _reset(self, *, stuck: bool = False) -> None:
        connection = self._connection
        self._connection, self._channel = None, None
        if connection is not None:
            (drop if stuck else release)(connection)
