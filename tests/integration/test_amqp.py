"""The AMQP publisher against the lab's real RabbitMQ: confirms, persistence, fail-over."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import uuid

import kombu
import pytest

from ganeti_ext.amqp.publisher import Publisher, PublishError


@pytest.fixture
def bound_queue(lab):
    """A fresh queue bound to the `ganeti` exchange for one routing key; deleted after."""
    key = f"test.{uuid.uuid4().hex}"
    exchange = kombu.Exchange("ganeti", type="topic", durable=True)
    queue = kombu.Queue(key, exchange=exchange, routing_key=key, durable=False, auto_delete=False)
    with lab.amqp_socket_factory():
        conn = kombu.Connection(lab.amqp_url)
        conn.connect()
    queue(conn.default_channel).declare()
    yield key, conn, queue
    queue(conn.default_channel).delete()
    conn.release()


def _get(conn, queue):
    message = queue(conn.default_channel).get(no_ack=True)
    assert message is not None, "the message reached the queue"
    return message


def test_published_message_is_confirmed_persistent_json(lab, bound_queue):
    key, conn, queue = bound_queue
    body = {"type": "ganeti-op-status", "instance": "snf-1", "status": "success"}
    with lab.amqp_socket_factory(), Publisher([lab.amqp_url]) as publisher:
        message_id = publisher.publish(key, body)
    message = _get(conn, queue)
    assert json.loads(message.body) == body
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == message_id
    assert message.content_type == "application/json"


def test_publisher_tries_the_next_broker_when_one_is_down(lab, bound_queue):
    key, conn, queue = bound_queue
    urls = ["amqp://guest:guest@127.0.0.1:5999//", lab.amqp_url]
    with lab.amqp_socket_factory(), Publisher(urls, connect_timeout=2) as publisher:
        publisher.publish(key, {"n": 1})
    assert json.loads(_get(conn, queue).body) == {"n": 1}


def test_no_broker_reachable_is_a_clear_error_without_the_password(lab):
    urls = ["amqp://guest:topsecret@127.0.0.1:5999//"]
    with (
        lab.amqp_socket_factory(),
        Publisher(urls, connect_timeout=2) as publisher,
        pytest.raises(PublishError) as excinfo,
    ):
        publisher.publish("test.nothing", {"n": 1})
    assert "127.0.0.1:5999" in str(excinfo.value)
    assert "topsecret" not in str(excinfo.value)


def test_unroutable_message_is_returned_and_reported_not_lost_silently(lab, bound_queue):
    """eventd's way: mandatory publishing; the broker returns what no queue is bound for,
    and the publisher reports it (eventd logs it) instead of failing or retrying."""
    key, conn, queue = bound_queue
    dropped = []
    with (
        lab.amqp_socket_factory(),
        Publisher([lab.amqp_url], mandatory=True, on_unroutable=dropped.append) as publisher,
    ):
        publisher.publish(f"unbound.{uuid.uuid4().hex}", {"n": 1}, "lost-1")
        publisher.publish(key, {"n": 2}, "kept-2")  # the control: a bound key still works
    assert json.loads(_get(conn, queue).body) == {"n": 2}
    assert len(dropped) == 1 and str(dropped[0]).startswith("lost-1 (unbound.")
    with (
        lab.amqp_socket_factory(),
        Publisher([lab.amqp_url], mandatory=True) as publisher,
        pytest.raises(PublishError, match="returned unroutable"),
    ):
        publisher.publish(f"unbound.{uuid.uuid4().hex}", {"n": 3}, "lost-3")


def test_a_full_queue_that_rejects_publishes_is_a_nack(lab):
    """x-overflow=reject-publish: the broker nacks what the queue cannot take, and the
    publisher says so (the caller keeps the batch) instead of calling it delivered."""
    key = f"test.full.{uuid.uuid4().hex}"
    exchange = kombu.Exchange("ganeti", type="topic", durable=True)
    queue = kombu.Queue(
        key,
        exchange=exchange,
        routing_key=key,
        durable=False,
        queue_arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    with lab.amqp_socket_factory():
        conn = kombu.Connection(lab.amqp_url)
        conn.connect()
    queue(conn.default_channel).declare()
    try:
        with lab.amqp_socket_factory(), Publisher([lab.amqp_url]) as publisher:
            publisher.publish(key, {"n": 1}, "fits-1")  # the control: the first one fits
            with pytest.raises(PublishError, match="nacked by the broker"):
                publisher.publish(key, {"n": 2}, "over-2")
        assert json.loads(_get(conn, queue).body) == {"n": 1}
    finally:
        queue(conn.default_channel).delete()
        conn.release()


HANG_DEADLINE = 120  # s: far beyond the 2 s confirm time-out; only a hang reaches it


class PausableRelay:
    """A TCP relay in the master's namespace between a client and the lab's broker whose
    broker-to-client direction can be held: the broker gets everything and answers, but
    its answers (the confirms) stop on the way, as on a stalled connection."""

    def __init__(self, lab, connections: int = 2) -> None:
        with lab.amqp_socket_factory():  # sockets made here stay in that namespace
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.upstreams = [socket.socket() for _ in range(connections)]
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.sockets: list[socket.socket] = [self.listener, *self.upstreams]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, lab) -> str:
        return lab.amqp_url.replace("127.0.0.1:5672", f"127.0.0.1:{self.port}")

    def _accept(self) -> None:
        for upstream in self.upstreams:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            self.sockets.append(client)
            upstream.connect(("127.0.0.1", 5672))
            for source, sink, gate in ((client, upstream, None), (upstream, client, self.flowing)):
                pump = threading.Thread(target=self._pump, args=(source, sink, gate), daemon=True)
                pump.start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, gate: threading.Event | None) -> None:
        try:
            while data := source.recv(65536):
                if gate is not None:
                    gate.wait()
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.flowing.set()
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def test_a_stalled_connection_is_a_confirm_time_out_and_a_fresh_connection(lab, bound_queue):
    """The broker takes the message but its confirm never arrives: the publisher gives up
    after confirm_timeout without hanging (not even while closing the stuck connection),
    says so, and the next publish goes out on a new connection. The message did reach
    the queue, so the caller's resend makes a duplicate, never a loss."""
    key, conn, queue = bound_queue
    relay = PausableRelay(lab)
    try:
        with (
            lab.amqp_socket_factory(),
            Publisher([relay.url(lab)], confirm_timeout=2) as publisher,
        ):
            publisher.publish(key, {"n": 1}, "through-1")  # the control: confirms get back
            relay.flowing.clear()
            outcome: list[BaseException] = []

            def stalled() -> None:
                try:
                    publisher.publish(key, {"n": 2}, "stalled-2")
                except BaseException as err:  # handed to the test thread
                    outcome.append(err)

            worker = threading.Thread(target=stalled, daemon=True)
            worker.start()
            worker.join(HANG_DEADLINE)
            assert not worker.is_alive(), "publish hung on the stalled connection"
            assert len(outcome) == 1 and isinstance(outcome[0], PublishError), outcome
            assert re.search(r"1 not confirmed by .* within 2 s", str(outcome[0]))
            assert publisher.connected_url is None
            relay.flowing.set()
            publisher.publish(key, {"n": 2}, "stalled-2")  # the caller's resend
    finally:
        relay.close()
    bodies = [json.loads(_get(conn, queue).body) for _ in range(3)]
    assert bodies == [{"n": 1}, {"n": 2}, {"n": 2}]
