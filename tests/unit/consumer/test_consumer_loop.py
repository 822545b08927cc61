"""The consume loop over kombu's in-memory transport (no broker needed)."""

import json
import uuid

import kombu
import pytest
from consumer_helpers import op, routing_key_of

from ganeti_ext.consumer import consume, messages, state, topology


@pytest.fixture
def prefix():
    return f"t{uuid.uuid4().hex[:8]}"


@pytest.fixture
def memory(prefix):
    connection = kombu.Connection("memory://")
    topology.declare(connection.channel(), prefix)
    yield connection
    connection.release()


@pytest.fixture
def db():
    database = state.StateDB(":memory:")
    yield database
    database.close()


def publish(connection, body, *, routing_key=None, message_id=None):
    producer = kombu.Producer(connection.channel(), exchange=topology.exchange())
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    producer.publish(
        payload,
        routing_key=routing_key or routing_key_of(body),
        content_type="application/json",
        content_encoding="utf-8",
        message_id=message_id or uuid.uuid4().hex,
    )


def run(db, prefix, **limits):
    handler = consume.Handler(db, messages.SchemaValidator.from_directory())
    return consume.run(
        lambda: kombu.Connection("memory://"),
        handler,
        limits=consume.LoopLimits(**{"idle_exit": 0.2, **limits}),
        queue_prefix=prefix,
    )


def test_messages_are_applied_and_bad_ones_dead_lettered(memory, db, prefix):
    publish(memory, op(status="running", t=1))
    publish(memory, op(t=2))
    publish(memory, b"{not json", routing_key="ganeti.snf.event.op")
    publish(memory, {"type": "ganeti-op-status", "instance": "snf-1"})  # fails the schema
    stats = run(db, prefix)
    assert stats.handled == 4
    assert stats.outcomes == {"applied": 2, "dead-lettered": 2}
    assert db.instance("snf-1").state == state.STARTED
    assert db.counters()["dead_lettered"] == 2


def test_redelivery_with_the_same_id_is_a_duplicate(memory, db, prefix):
    publish(memory, op(t=1), message_id="once")
    publish(memory, op(t=1), message_id="once")
    stats = run(db, prefix)
    assert stats.outcomes == {"applied": 1, "duplicate": 1}


def test_max_messages_stops_and_leaves_the_rest_queued(memory, db, prefix):
    for t in range(1, 6):
        publish(memory, op(operation="OP_INSTANCE_REBOOT", t=t))
    assert run(db, prefix, max_messages=2).handled == 2
    assert run(db, prefix).handled == 3


def test_every_queue_is_consumed(memory, db, prefix):
    publish(memory, {"type": "eventd-heartbeat", "cluster": "c1"})
    publish(
        memory,
        {"type": "image-info", "instance": "snf-1", "event_time": [1, 0], "messages": ["hello"]},
    )
    stats = run(db, prefix)
    assert stats.outcomes == {"applied": 2}
    assert db.cluster("c1")["last_heartbeat"] is not None
    assert db.progress("snf-1")["messages"] == ["hello"]


def test_unreachable_broker_fails_a_limited_run(db, prefix):
    def refuse():
        raise ConnectionError("no AMQP broker reachable")

    with pytest.raises(ConnectionError):
        consume.run(refuse, consume.Handler(db), limits=consume.LoopLimits(idle_exit=1))


def test_topology_matches_the_contract():
    queues = {queue.name: queue for queue in topology.queues()}
    assert set(queues) == {
        "ganeti-ext-events-op",
        "ganeti-ext-events-network",
        "ganeti-ext-events-progress",
        "ganeti-ext-events-cluster",
    }
    keys = {b.routing_key for b in queues["ganeti-ext-events-cluster"].bindings}
    assert keys == {"ganeti.event.cluster", "eventd.heartbeat"}
    op_queue = queues["ganeti-ext-events-op"]
    assert op_queue.durable and not op_queue.auto_delete
    assert op_queue.queue_arguments == {
        "x-dead-letter-exchange": "ganeti-dl",
        "x-dead-letter-routing-key": "ganeti-ext-events-op-dl",
    }
    assert {q.name for q in topology.dead_letter_queues()} == {f"{n}-dl" for n in queues}
