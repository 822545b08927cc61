"""What the lab's broker carries: every message on the `ganeti` exchange matching a
binding key, from the moment a Capture is made, in a private throw-away queue."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import kombu

from ganeti_ext.amqp.routing import EXCHANGE, EXCHANGE_TYPE


class Capture:
    def __init__(self, lab, key: str = "#", name: str = "itest-capture") -> None:
        with lab.amqp_socket_factory():
            self.connection = kombu.Connection(lab.amqp_url)
            self.connection.connect()
        self.queue = kombu.Queue(
            f"{name}-{uuid.uuid4().hex[:8]}",
            exchange=kombu.Exchange(EXCHANGE, type=EXCHANGE_TYPE, durable=True),
            routing_key=key,
            exclusive=True,
            auto_delete=True,
        )(self.connection.channel())
        self.queue.declare()
        self.seen: list[tuple[str, dict]] = []  # (routing key, body), in arrival order

    def drain(self) -> list[tuple[str, dict]]:
        """Take in everything that arrived so far; all seen since the start."""
        while (message := self.queue.get(no_ack=True)) is not None:
            self.seen.append((message.delivery_info["routing_key"], json.loads(message.body)))
        return self.seen

    @property
    def messages(self) -> list[dict]:
        return [body for _, body in self.drain()]

    def wait(self, what: str, found: Callable[[str, dict], bool], timeout: float = 120) -> dict:
        """The first message (seen or arriving) for which `found(key, body)` holds."""
        deadline = time.monotonic() + timeout
        while True:
            for key, body in self.drain():
                if found(key, body):
                    return body
            if time.monotonic() > deadline:
                got = [(key, body.get("type"), body.get("operation")) for key, body in self.seen]
                raise AssertionError(f"no {what} within {timeout:.0f} s; seen: {got[-20:]}")
            time.sleep(0.2)

    def close(self) -> None:
        self.connection.release()
