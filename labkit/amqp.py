"""Reading what reaches the lab's broker: a live collector and a durable queue for fault tests."""

from __future__ import annotations

import threading
import time

import kombu

from labkit import netns, settings


def connect() -> kombu.Connection:
    """A broker connection whose socket lives in the master's namespace."""
    with netns.entered(settings.MASTER.netns):
        conn = kombu.Connection(settings.AMQP_URL, connect_timeout=5)
        conn.connect()
    return conn


class Collector(threading.Thread):
    """Consumes every message of one exchange as it comes: (received_at, body, message_id)."""

    def __init__(self, exchange: str, routing_key: str = "#") -> None:
        super().__init__(daemon=True)
        self.exchange = kombu.Exchange(exchange, type="topic", durable=True)
        self.routing_key = routing_key
        self.received: list[tuple[float, dict, str]] = []
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        queue = kombu.Queue(
            "", exchange=self.exchange, routing_key=self.routing_key, exclusive=True
        )
        with connect() as conn, conn.Consumer(queue, callbacks=[self._on_message], accept=["json"]):
            self.ready.set()
            while not self.stopping.is_set():
                try:
                    conn.drain_events(timeout=0.2)
                except TimeoutError:
                    pass

    def _on_message(self, body, message) -> None:
        self.received.append((time.time(), body, message.properties.get("message_id", "")))
        message.ack()

    def __enter__(self) -> Collector:
        self.start()
        if not self.ready.wait(30):
            raise TimeoutError("the collector could not bind its queue")
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join(5)


class DurableQueue:
    """A durable queue bound to an exchange: it keeps messages across broker restarts."""

    def __init__(self, name: str, exchange: str, routing_key: str = "#") -> None:
        exchange_obj = kombu.Exchange(exchange, type="topic", durable=True)
        self.queue = kombu.Queue(name, exchange=exchange_obj, routing_key=routing_key, durable=True)

    def declare(self) -> None:
        with connect() as conn:
            self.queue(conn.default_channel).declare()

    def drain(self, idle: float = 3.0, limit: float = 120.0) -> list[tuple[bytes, str]]:
        """Everything in the queue until it stays empty for `idle` s: (raw body, message id)."""
        got: list[tuple[bytes, str]] = []
        deadline = time.monotonic() + limit
        quiet_since = time.monotonic()
        with connect() as conn:
            bound = self.queue(conn.default_channel)
            while time.monotonic() < deadline:
                message = bound.get(no_ack=True)
                if message is None:
                    if time.monotonic() - quiet_since > idle:
                        break
                    time.sleep(0.1)
                    continue
                quiet_since = time.monotonic()
                got.append((message.body, message.properties.get("message_id", "")))
        return got

    def delete(self) -> None:
        with connect() as conn:
            self.queue(conn.default_channel).delete()
