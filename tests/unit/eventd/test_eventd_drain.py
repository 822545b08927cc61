"""The drainer: confirm-then-delete, global time order, corrupt files aside, backoff."""

from __future__ import annotations

import json

import kombu
import pytest
from eventd_helpers import FakePublisher

from ganeti_ext.amqp.backoff import Backoff
from ganeti_ext.amqp.publisher import Publisher, PublishError
from ganeti_ext.eventd.drain import Drainer
from ganeti_ext.spool import OutgoingMessage, Spool


def message(n: int) -> OutgoingMessage:
    return OutgoingMessage("ganeti.snf.event.op", {"n": n}, f"c:{n}:0:success")


@pytest.fixture
def spools(tmp_path):
    return Spool(tmp_path / "outbox", fsync=False), Spool(tmp_path / "spool", fsync=False)


def test_publishes_both_spools_in_creation_order_and_deletes_after_confirm(spools):
    outbox, handover = spools
    outbox.put(message(1))
    handover.put(message(2))
    outbox.put(message(3))
    publisher = FakePublisher()
    drainer = Drainer([outbox, handover], publisher, Backoff())
    assert drainer.drain_once()
    assert publisher.ids == ["c:1:0:success", "c:2:0:success", "c:3:0:success"]
    assert outbox.pending() == [] and handover.pending() == []


def test_broker_down_keeps_everything_in_order(spools):
    outbox, handover = spools
    for n in range(5):
        outbox.put(message(n))
    publisher = FakePublisher()
    publisher.down = True
    drainer = Drainer([outbox, handover], publisher, Backoff())
    assert not drainer.drain_once()
    assert len(outbox.pending()) == 5
    publisher.down = False
    assert drainer.drain_once()
    assert [body["n"] for _, body, _ in publisher.sent] == [0, 1, 2, 3, 4]


def test_corrupt_file_is_quarantined_and_the_rest_goes_on(spools, caplog):
    outbox, handover = spools
    outbox.put(message(1))
    bad = handover.directory / "00000000000000000001-1-000001.msg"
    handover.directory.mkdir(parents=True, exist_ok=True)
    bad.write_text("{broken")
    publisher = FakePublisher()
    drainer = Drainer([outbox, handover], publisher, Backoff())
    assert drainer.drain_once()
    assert publisher.ids == ["c:1:0:success"]
    assert (handover.directory / "bad" / bad.name).exists()
    assert drainer.quarantined == 1
    assert "corrupt" in caplog.text


def test_run_backs_off_while_the_broker_is_down(spools):
    outbox, _ = spools
    outbox.put(message(1))
    publisher = FakePublisher()
    publisher.down = True
    delays = []

    def sleep(delay):
        delays.append(delay)
        if len(delays) == 6:
            publisher.down = False
        return len(delays) > 6

    drainer = Drainer([outbox], publisher, Backoff(0.5, 4), sleep=sleep)
    original = drainer.drain_once

    def drain_then_stop():
        done = original()
        if done:
            drainer.stop()
        return done

    drainer.drain_once = drain_then_stop
    drainer.run()
    assert delays == [0.5, 1, 2, 4, 4, 4]
    assert publisher.ids == ["c:1:0:success"]
    assert publisher.closed == 1


def test_backoff_doubles_up_to_the_cap_and_resets():
    backoff = Backoff(0.5, 10)
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1, 2, 4, 8, 10, 10]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    with pytest.raises(ValueError):
        Backoff(2, 1)


def test_real_publisher_over_kombu_memory_transport(spools):
    outbox, _ = spools
    for n in range(3):
        outbox.put(message(n))
    with kombu.Connection("memory://") as connection:
        exchange = kombu.Exchange("ganeti", type="topic", durable=True)
        queue = kombu.Queue("test-eventd", exchange, routing_key="ganeti.*.event.op")
        queue(connection.channel()).declare()
        drainer = Drainer([outbox], Publisher(["memory://"]), Backoff())
        assert drainer.drain_once()
        received = []
        simple = connection.SimpleQueue(queue)
        for _ in range(3):
            got = simple.get(timeout=1)
            received.append((json.loads(got.body)["n"], got.properties["message_id"]))
            got.ack()
        simple.close()
    assert received == [(0, "c:0:0:success"), (1, "c:1:0:success"), (2, "c:2:0:success")]
    assert outbox.pending() == []


def test_pending_messages_go_out_in_ordered_batches(spools):
    outbox, handover = spools
    for n in range(450):
        (outbox if n % 3 else handover).put(message(n))
    publisher = FakePublisher()
    drainer = Drainer([outbox, handover], publisher, Backoff())
    assert drainer.drain_once()
    assert publisher.batches == [200, 200, 50]
    assert [body["n"] for _, body, _ in publisher.sent] == list(range(450))
    assert outbox.pending() == [] and handover.pending() == []


def test_files_leave_only_with_their_confirmed_batch(spools):
    outbox, _ = spools
    for n in range(7):
        outbox.put(message(n))

    class FailsSecondBatch(FakePublisher):
        def publish_many(self, messages):
            # Nothing of this batch has been removed while it is being confirmed.
            assert len(outbox.pending()) == 7 - len(self.sent)
            if len(self.batches) == 1 and not self.down:
                raise PublishError("2 of 3 nacked by the broker")
            super().publish_many(messages)

    publisher = FailsSecondBatch()
    drainer = Drainer([outbox], publisher, Backoff(), batch_size=3)
    assert not drainer.drain_once()
    assert [body["n"] for _, body, _ in publisher.sent] == [0, 1, 2]
    assert len(outbox.pending()) == 4  # the failed batch and what follows it
    publisher.down = False
    publisher.batches.append(0)  # next attempt succeeds
    assert drainer.drain_once()
    assert [body["n"] for _, body, _ in publisher.sent] == list(range(7))
    assert outbox.pending() == []


def test_unsendable_body_is_set_aside_and_the_batch_goes_on_in_order(spools):
    outbox, handover = spools
    outbox.put(message(1))
    # Valid JSON for Python, not for AMQP consumers: NaN (a writer not using Spool.put).
    odd = handover.put(OutgoingMessage("ganeti.snf.event.progress", {"x": 0}, "nan-1"))
    odd.write_text(odd.read_text().replace('"x":0', '"x":NaN'))
    outbox.put(message(2))
    with kombu.Connection("memory://") as connection:
        exchange = kombu.Exchange("ganeti", type="topic", durable=True)
        queue = kombu.Queue("test-eventd-nan", exchange, routing_key="ganeti.#")
        queue(connection.channel()).declare()
        drainer = Drainer([outbox, handover], Publisher(["memory://"]), Backoff())
        assert drainer.drain_once()
        simple = connection.SimpleQueue(queue)
        got = [json.loads(simple.get(timeout=1).body)["n"] for _ in range(2)]
        simple.close()
    assert got == [1, 2]
    assert drainer.quarantined == 1 and handover.pending() == []
    assert len(list((handover.directory / "bad").glob("*.msg"))) == 1
