"""Publisher against kombu's in-memory transport and a scripted fake broker for confirms.

(A real broker: tests/integration.)
"""

import json
import uuid

import kombu
import pytest

from ganeti_ext.amqp.publisher import Confirms, Publisher, PublishError, open_confirm_channel
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


def test_batch_over_memory_transport_keeps_order(queue):
    with Publisher(["memory://"]) as publisher:
        publisher.publish_many(
            [("ganeti.snf.event.op", {"n": n}, f"id-{n}", {"h": n}) for n in range(3)]
        )
    got = [queue.get(no_ack=True) for _ in range(3)]
    assert [json.loads(m.body)["n"] for m in got] == [0, 1, 2]
    assert [m.properties["message_id"] for m in got] == ["id-0", "id-1", "id-2"]
    assert [m.headers for m in got] == [{"h": 0}, {"h": 1}, {"h": 2}]


def test_urls_are_required():
    with pytest.raises(ValueError):
        Publisher([])


# --- pipelined confirms, against a scripted fake broker ----------------------------------
# The fake stands in for ConfirmChannel as a whole (its contract: `send` one message,
# `settle` until all are settled or the time-out, broker answers recorded in a real
# Confirms); what ConfirmChannel does with py-amqp is proven on RabbitMQ itself
# (tests/integration/test_amqp.py: confirm, nack, return, stalled connection).
class FakeBroker:
    """Scripts the broker's answers: `answer(tags)` gets the delivery tags sent since it
    was last called and returns the answers: ("ack" | "nack", tag, multiple),
    ("return", message_id), or an exception for settle to raise (connection dropped).
    """

    def __init__(self, answer=None):
        self.answer = answer or (lambda tags: [("ack", tag, False) for tag in tags])
        self.connections = []
        self.log = []  # ("publish", message_id) / ("settle",) in call order

    def connect(self, url, **kwargs):
        connection = FakeConnection(self, url)
        self.connections.append(connection)
        return connection

    def open_channel(self, connection, channel):
        connection.confirm_channel = FakeConfirmChannel(self)
        return connection.confirm_channel

    @property
    def published(self):
        return [m for c in self.connections for m in c.confirm_channel.published]


class FakeConfirmChannel:
    def __init__(self, broker):
        self.broker = broker
        self.confirms = Confirms()
        self.published = []  # (exchange, routing_key, payload, message_id, headers, mandatory)
        self.unanswered = []

    def send(self, exchange, routing_key, payload, message_id, headers, mandatory):
        self.published.append((exchange, routing_key, payload, message_id, headers, mandatory))
        self.unanswered.append(self.confirms.sent())
        self.broker.log.append(("publish", message_id))

    def settle(self, timeout):
        self.broker.log.append(("settle",))
        fresh, self.unanswered = self.unanswered, []
        answers = self.broker.answer(fresh) if fresh else []
        if isinstance(answers, BaseException):
            raise answers
        for kind, *args in answers:
            if kind == "return":
                self.confirms.on_return(Exception("NO_ROUTE"), "ganeti", "some.key", Msg(args[0]))
            else:
                getattr(self.confirms, f"on_{kind}")(*args)
        return not self.confirms.unsettled


class Msg:
    def __init__(self, message_id):
        self.properties = {"message_id": message_id}


class FakeChannel:
    """The raw channel: only kombu's exchange declaration reaches it."""

    def __init__(self):
        self.exchanges = []

    def exchange_declare(self, exchange=None, type=None, durable=False, **kwargs):
        self.exchanges.append((exchange, type, durable))


class FakeConnection:
    transport_cls = "amqp"
    connection_errors = (ConnectionError,)
    channel_errors = ()

    def __init__(self, broker, url):
        self.broker, self.url = broker, url
        self.channel_ = FakeChannel()
        self.confirm_channel = None
        self.released = self.dropped = False

    def ensure_connection(self, max_retries=None):
        return self

    def channel(self):
        return self.channel_

    def as_uri(self, include_password=False):
        return self.url

    def release(self):
        self.released = True

    def collect(self):
        self.dropped = True


def fake_publisher(broker, **kwargs):
    publisher = Publisher(["amqp://guest:secret@broker//"], **kwargs)
    publisher.connection_factory = broker.connect
    publisher.channel_factory = broker.open_channel
    return publisher


def batch(n, first=0):
    return [
        ("ganeti.snf.event.op", {"n": i}, f"c:{i}:0:success", None) for i in range(first, first + n)
    ]


def ids(published):
    return [message_id for _, _, _, message_id, _, _ in published]


def test_batch_is_sent_without_waiting_then_confirmed_with_multiple_acks():
    # The broker confirms 1-2 at once, then 4 alone, then 3 and 5 with one multiple ack.
    broker = FakeBroker(lambda tags: [("ack", 2, True), ("ack", 4, False), ("ack", 5, True)])
    with fake_publisher(broker) as publisher:
        publisher.publish_many(batch(5))
        assert broker.connections[0].channel_.exchanges == [("ganeti", "topic", True)]
    assert broker.log == [("publish", f"c:{i}:0:success") for i in range(5)] + [("settle",)]
    assert ids(broker.published) == [f"c:{i}:0:success" for i in range(5)]
    exchange, key, payload, _, headers, mandatory = broker.published[0]
    assert (exchange, key, headers, mandatory) == ("ganeti", "ganeti.snf.event.op", {}, False)
    assert json.loads(payload) == {"n": 0}


def test_later_batches_continue_the_channels_delivery_tags():
    seen = []

    def answer(tags):
        seen.append(list(tags))
        return [("ack", tags[-1], True)]

    broker = FakeBroker(answer)
    with fake_publisher(broker) as publisher:
        publisher.publish_many(batch(3))
        publisher.publish_many(batch(2, first=3))
        assert publisher.publish("ganeti.snf.event.op", {"n": 5}, "c:5:0:success") == (
            "c:5:0:success"
        )
    assert seen == [[1, 2, 3], [4, 5], [6]]
    assert len(broker.connections) == 1


def test_nacks_fail_the_batch_naming_how_many():
    broker = FakeBroker(lambda tags: [("ack", 1, False), ("nack", 3, True), ("ack", 4, False)])
    with fake_publisher(broker) as publisher:
        with pytest.raises(PublishError, match=r"2 of 4 nacked"):
            publisher.publish_many(batch(4))
        # Every tag was settled: the channel stays usable, no reconnect needed.
        broker.answer = lambda tags: [("ack", tags[-1], True)]
        publisher.publish_many(batch(4))
    assert len(broker.connections) == 1


def test_confirm_timeout_fails_the_batch_and_drops_the_connection():
    broker = FakeBroker(lambda tags: [("ack", tags[0], False)])  # the rest never comes
    publisher = fake_publisher(broker, confirm_timeout=0.2)
    with pytest.raises(
        PublishError, match=r"2 not confirmed by amqp://guest:\*+@broker// within 0.2 s"
    ):
        publisher.publish_many(batch(3))
    # Dropped, not closed politely: the close handshake would wait for the silent broker.
    assert broker.connections[0].dropped and not broker.connections[0].released
    assert publisher.connected_url is None


def test_connection_lost_mid_batch_resends_the_whole_batch_once():
    answers = iter([ConnectionResetError("connection reset by peer"), None])

    def answer(tags):
        failure = next(answers)
        return failure if failure else [("ack", tags[-1], True)]

    broker = FakeBroker(answer)
    with fake_publisher(broker) as publisher:
        publisher.publish_many(batch(3))
    first, second = broker.connections
    assert first.dropped
    # Re-sent byte for byte, with the same message ids.
    assert first.confirm_channel.published == second.confirm_channel.published
    assert ids(second.confirm_channel.published) == [
        "c:0:0:success",
        "c:1:0:success",
        "c:2:0:success",
    ]


def test_connection_lost_twice_is_a_publish_error_for_the_caller_to_retry():
    broker = FakeBroker(lambda tags: ConnectionResetError("connection reset by peer"))
    publisher = fake_publisher(broker)
    with pytest.raises(PublishError, match=r"batch of 3 messages .* connection reset"):
        publisher.publish_many(batch(3))
    assert len(broker.connections) == 2 and all(c.dropped for c in broker.connections)
    assert "secret" not in str(publisher.connected_url)


def test_unroutable_mandatory_messages_fail_the_batch():
    broker = FakeBroker(lambda tags: [("return", "c:1:0:success"), ("ack", tags[-1], True)])
    with (
        fake_publisher(broker, mandatory=True) as publisher,
        pytest.raises(PublishError, match=r"1 returned unroutable \(first: c:1:0:success"),
    ):
        publisher.publish_many(batch(2))
    assert all(mandatory for *_, mandatory in broker.published)


def test_unroutable_messages_go_to_the_callers_handler_and_count_as_settled():
    broker = FakeBroker(lambda tags: [("return", "c:1:0:success"), ("ack", tags[-1], True)])
    dropped = []
    with fake_publisher(broker, mandatory=True, on_unroutable=dropped.append) as publisher:
        publisher.publish_many(batch(2))
    assert len(dropped) == 1 and str(dropped[0]).startswith("c:1:0:success (")


def test_bad_body_is_refused_before_anything_is_sent():
    broker = FakeBroker()
    with fake_publisher(broker) as publisher, pytest.raises(ValidationError):
        publisher.publish_many([*batch(2), ("k", {"x": float("nan")}, "bad", None)])
    assert broker.published == []


def test_empty_batch_does_not_connect():
    broker = FakeBroker()
    fake_publisher(broker).publish_many([])
    assert broker.connections == []


def test_transport_without_confirms_is_refused():
    class Redis:
        transport_cls = "redis"

    with pytest.raises(PublishError, match=r"transport 'redis' has no publisher confirms"):
        open_confirm_channel(Redis(), FakeChannel())
