"""Least privilege on the broker: what the node side's user may and may not do.

The lab makes its users as docs/amqp-contract.md ("Permissions") says. A node's user
publishes to `ganeti` (the positive control, seen in a queue) and is refused everything
that would reach the cloud layer's state: consuming, purging, declaring a queue,
publishing to any other exchange.
"""

from __future__ import annotations

import json
import uuid

import amqp.exceptions
import kombu
import pytest

from ganeti_ext.amqp.publisher import Publisher
from ganeti_ext.amqp.routing import EXCHANGE, EXCHANGE_TYPE
from labkit import rabbit


@pytest.fixture
def admin(lab):
    """A guest connection (the tests' admin) and a queue of the cloud layer's; deleted after."""
    name = f"ganeti-ext-events-perm-{uuid.uuid4().hex[:8]}"
    exchange = kombu.Exchange(EXCHANGE, type=EXCHANGE_TYPE, durable=True)
    queue = kombu.Queue(name, exchange=exchange, routing_key=name, durable=False)
    other = kombu.Exchange(f"perm-test-{uuid.uuid4().hex[:8]}", type="topic", durable=False)
    with lab.amqp_socket_factory():
        conn = kombu.Connection(lab.amqp_url)
        conn.connect()
    queue(conn.default_channel).declare()
    other(conn.default_channel).declare()
    yield conn, queue, other
    queue(conn.default_channel).delete()
    other(conn.default_channel).delete()
    conn.release()


def node_channel(lab):
    with lab.amqp_socket_factory():
        conn = kombu.Connection(rabbit.node_url())
        conn.connect()
    return conn, conn.channel()


def refused(lab, action) -> str:
    """Run `action(channel)` as the node user; the broker's refusal (403) as text."""
    conn, channel = node_channel(lab)
    try:
        with pytest.raises(amqp.exceptions.AccessRefused) as excinfo:
            action(channel)
    finally:
        conn.release()
    return str(excinfo.value)


def test_node_user_publishes_to_its_exchange_and_nothing_else(lab, admin):
    conn, queue, other = admin
    name = queue.name
    # Control: the node's user publishes (confirmed) and the message arrives.
    with lab.amqp_socket_factory(), Publisher([rabbit.node_url()]) as publisher:
        publisher.publish(name, {"type": "permission-control"}, "perm-1")
    message = queue(conn.default_channel).get(no_ack=True)
    assert message is not None and json.loads(message.body) == {"type": "permission-control"}

    def publish_elsewhere(channel):
        channel.confirm_select()
        message = channel.prepare_message(b"{}", None, "application/json", "utf-8")
        channel.basic_publish(message, exchange=other.name, routing_key="x")
        channel.basic_qos(0, 1, False)  # a round trip: the refusal arrives before it

    checks = {
        "consume": lambda channel: channel.basic_get(queue=name, no_ack=True),
        "purge": lambda channel: channel.queue_purge(queue=name),
        "declare": lambda channel: channel.queue_declare(
            queue=f"ganeti-ext-events-perm-{uuid.uuid4().hex[:8]}", auto_delete=True
        ),
        "delete": lambda channel: channel.queue_delete(queue=name),
        "publish elsewhere": publish_elsewhere,
    }
    for what, action in checks.items():
        reason = refused(lab, action)
        assert "ACCESS_REFUSED" in reason or "access" in reason.lower(), (what, reason)
    # Nothing of that reached the queue: it is still there, still empty.
    assert queue(conn.default_channel).queue_declare(passive=True).message_count == 0
