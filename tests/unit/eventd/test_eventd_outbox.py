"""The outbox's batch files: one file for many messages, drained in order, whole."""

from __future__ import annotations

import pytest
from eventd_helpers import FakePublisher

from ganeti_ext.amqp.backoff import Backoff
from ganeti_ext.amqp.publisher import PublishError
from ganeti_ext.eventd.drain import Drainer
from ganeti_ext.eventd.outbox import Outbox
from ganeti_ext.spool import OutgoingMessage, Spool, encode


def message(n: int) -> OutgoingMessage:
    return OutgoingMessage("ganeti.snf.event.op", {"n": n, "text": "a\nb"}, f"c:{n}:0:success")


@pytest.fixture
def outbox(tmp_path):
    return Outbox(tmp_path / "outbox", fsync=True)


def test_several_messages_are_one_durable_file_of_encoded_lines(outbox):
    paths = outbox.put_many([message(n) for n in range(5)])
    assert len(paths) == 1 and paths[0].name.endswith(".msgs")
    assert paths[0].read_bytes() == b"".join(encode(message(n)) + b"\n" for n in range(5))
    assert outbox.pending() == paths
    assert outbox.load_all(paths[0]) == [message(n) for n in range(5)]
    assert [p.name for p in outbox.directory.iterdir()] == [paths[0].name]  # no temp left


def test_one_message_is_an_ordinary_spool_file(outbox):
    (path,) = outbox.put_many([message(1)])
    assert path.name.endswith(".msg") and outbox.load_all(path) == [message(1)]
    assert Spool(outbox.directory).pending() == [path]
    assert outbox.put_many([]) == []


def test_batch_files_and_spool_files_drain_in_one_time_order(tmp_path, outbox):
    handover = Spool(tmp_path / "spool", fsync=False)
    outbox.put_many([message(0), message(1)])
    handover.put(message(2))
    outbox.put(message(3))
    outbox.put_many([message(n) for n in range(4, 9)])
    publisher = FakePublisher()
    drainer = Drainer([outbox, handover], publisher, Backoff(), batch_size=3)
    assert drainer.drain_once()
    assert [body["n"] for _, body, _ in publisher.sent] == list(range(9))
    # A batch file is never split: 0-1 + 2 make 3; then 3 + the five of 4-8.
    assert publisher.batches == [3, 6]
    assert outbox.pending() == [] and handover.pending() == []


def test_a_batch_file_leaves_only_when_all_its_messages_are_confirmed(outbox):
    outbox.put_many([message(n) for n in range(4)])
    publisher = FakePublisher()
    publisher.down = True
    drainer = Drainer([outbox], publisher, Backoff())
    assert not drainer.drain_once()
    assert len(outbox.pending()) == 1

    class Nacks(FakePublisher):
        def publish_many(self, messages):
            raise PublishError("1 of 4 nacked by the broker")

    assert not Drainer([outbox], Nacks(), Backoff()).drain_once()
    assert len(outbox.pending()) == 1
    publisher.down = False
    assert drainer.drain_once()
    assert publisher.ids == [f"c:{n}:0:success" for n in range(4)]
    assert outbox.pending() == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:-1],  # no final newline: truncated
        lambda data: data.replace(b'"v":1', b'"v":7', 1),
        lambda data: data + b"garbage\n",
    ],
)
def test_corrupt_batch_file_is_set_aside_whole(outbox, damage):
    (path,) = outbox.put_many([message(0), message(1)])
    path.write_bytes(damage(path.read_bytes()))
    outbox.put(message(2))
    publisher = FakePublisher()
    drainer = Drainer([outbox], publisher, Backoff())
    assert drainer.drain_once()
    assert publisher.ids == ["c:2:0:success"]
    assert drainer.quarantined == 1
    assert (outbox.directory / "bad" / path.name).exists()
