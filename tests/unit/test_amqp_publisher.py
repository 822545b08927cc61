"""Publisher against kombu's in-memory transport (a real broker: tests/integration)."""

import json
import uuid

import kombu
import pytest

from ganeti_ext.amqp.publisher import Publisher, PublishError
from ganeti_ext.errors import ValidationError

# Port 1 on loopback: connection refused at once, no network involved.
DEAD_BROKER = "amqp://ganeti:hunter2@127.0.0.1:1//"


@pytest.fixture
def queue():
    """A fresh queue bound to the ganeti exchange in the in-memory broker."""
    with kombu.Connection("memory://") as connection:
        exchange = kombu.Exchange("ganeti", type="topic", durable=True)
        bound = kombu.Queue(f"test-{uuid.uuid4().hex}", exchange, routing_key="ganeti.#")(
            connection.default_channel
        )
        bound.declare()
        yield bound
        bound.delete()


def test_message_is_persistent_json_with_id(queue):
    with Publisher(["memory://"]) as publisher:
        message_id = publisher.publish(
            "ganeti.snf.event.op",
            {"type": "ganeti-op-status", "instance": "snf-42"},
            headers={"origin": "test"},
        )
    message = queue.get(no_ack=True)
    assert json.loads(message.body) == {"type": "ganeti-op-status", "instance": "snf-42"}
    assert message.content_type == "application/json"
    assert message.properties["delivery_mode"] == 2
    assert message.properties["message_id"] == message_id
    assert message.headers == {"origin": "test"}
    assert message.delivery_info["routing_key"] == "ganeti.snf.event.op"


def test_given_message_id_is_kept(queue):
    with Publisher(["memory://"]) as publisher:
        assert publisher.publish("ganeti.snf.event.op", {}, message_id="job-7-op-0") == (
            "job-7-op-0"
        )
    assert queue.get(no_ack=True).properties["message_id"] == "job-7-op-0"


def test_next_url_is_tried_when_one_is_down(queue):
    with Publisher([DEAD_BROKER, "memory://"], connect_timeout=2) as publisher:
        publisher.publish("ganeti.snf.event.op", {"n": 1})
        assert publisher.connected_url.startswith("memory://")
    assert json.loads(queue.get(no_ack=True).body) == {"n": 1}


def test_no_broker_is_a_clear_error_without_password():
    with (
        Publisher([DEAD_BROKER], connect_timeout=2) as publisher,
        pytest.raises(PublishError) as failure,
    ):
        publisher.publish("ganeti.snf.event.op", {})
    assert "no AMQP broker reachable" in str(failure.value)
    assert "127.0.0.1:1" in str(failure.value)
    assert "hunter2" not in str(failure.value)


def test_body_must_be_json():
    with Publisher(["memory://"]) as publisher:
        with pytest.raises(ValidationError, match=r"not plain JSON"):
            publisher.publish("k", {"when": object()})
        with pytest.raises(ValidationError):
            publisher.publish("k", {"x": float("nan")})


def test_dead_connection_is_replaced_once(queue):
    publisher = Publisher(["memory://"])
    publisher.publish("ganeti.snf.event.op", {"n": 1})
    calls = []
    real_publish = publisher._producer.publish

    def fail_once(*args, **kwargs):
        calls.append(1)
        raise ConnectionResetError("connection reset by peer")

    publisher._producer.publish = fail_once
    publisher.publish("ganeti.snf.event.op", {"n": 2})  # reconnects, new producer
    assert calls == [1] and publisher._producer.publish != fail_once
    publisher.close()
    assert real_publish is not None
    bodies = [json.loads(queue.get(no_ack=True).body)["n"] for _ in range(2)]
    assert bodies == [1, 2]


def test_nack_is_not_retried(queue):
    import amqp.exceptions

    publisher = Publisher(["memory://"])
    publisher._ensure_producer()

    def nack(*args, **kwargs):
        raise amqp.exceptions.MessageNacked()

    publisher._producer.publish = nack
    with pytest.raises(PublishError, match=r"nack"):
        publisher.publish("ganeti.snf.event.op", {})
    publisher.close()


def test_unroutable_mandatory_message_is_an_error():
    publisher = Publisher(["memory://"], mandatory=True)
    producer = publisher._ensure_producer()

    def returned(*args, **kwargs):
        publisher._on_return(Exception("NO_ROUTE"), "ganeti", kwargs["routing_key"], None)

    producer.publish = returned
    with pytest.raises(PublishError, match=r"returned unroutable: NO_ROUTE"):
        publisher.publish("ganeti.nobody.event.op", {})
    publisher.close()


def test_confirms_are_requested_from_the_transport():
    publisher = Publisher(["memory://"])
    publisher._ensure_producer()
    assert publisher._connection.transport_options["confirm_publish"] is True
    publisher.close()


def test_urls_are_required():
    with pytest.raises(ValueError):
        Publisher([])
