"""eventd loses nothing: broker outages, SIGKILL, junk in the queue (issue 3 fault tests).

Each test runs the installed daemon on a scratch queue publishing to an exchange of its
own, read through a durable queue that keeps messages across broker restarts.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import defaultdict

import pytest
from instances import add_instance

from labkit import rabbit
from labkit.amqp import DurableQueue
from labkit.scratch import ScratchEventd

WAVE = 20


@pytest.fixture
def scratch(lab, tmp_path):
    tag = uuid.uuid4().hex[:8]
    queue = DurableQueue(f"test-eventd-{tag}", exchange=f"ganeti-test-{tag}")
    queue.declare()
    eventd = ScratchEventd(tmp_path, exchange=f"ganeti-test-{tag}")
    yield eventd, queue
    eventd.stop(signal.SIGKILL)
    queue.delete()


def keys_and_duplicates(messages: list[tuple[bytes, str]]) -> tuple[set[str], dict]:
    """The (job:status) keys received, and for every message id its distinct bodies."""
    bodies: dict[str, set[bytes]] = defaultdict(set)
    keys = set()
    for raw, message_id in messages:
        body = json.loads(raw)
        keys.add(f"{body['jobId']}:{body['status']}")
        bodies[message_id].add(raw)
    return keys, bodies


def assert_nothing_lost(expected: set[str], messages) -> None:
    keys, bodies = keys_and_duplicates(messages)
    assert expected - keys == set(), f"lost {len(expected - keys)} of {len(expected)}"
    # A duplicate may only be a byte-identical re-send under the same dedup key.
    assert all(len(variants) == 1 for variants in bodies.values())


def write_jobs(eventd: ScratchEventd, first: int, last: int) -> set[str]:
    expected: set[str] = set()
    for start in range(first, last + 1, WAVE):
        expected.update(eventd.write_wave(range(start, min(start + WAVE, last + 1))))
    return expected


def test_broker_down_30s_mid_burst_loses_nothing(scratch):
    eventd, queue = scratch
    eventd.start()
    expected = write_jobs(eventd, 1, 100)  # 300 transitions before the outage
    rabbit.pause()
    try:
        expected |= write_jobs(eventd, 101, 200)  # 300 more while the broker is down
        time.sleep(30)
        assert eventd.alive(), "eventd keeps running while the broker is down"
    finally:
        rabbit.resume()
    assert_nothing_lost(expected, queue.drain(idle=5))
    assert eventd.alive()


def test_sigkill_mid_burst_then_restart_loses_nothing(scratch):
    eventd, queue = scratch
    eventd.start()
    write_jobs(eventd, 1, 150)
    eventd.stop(signal.SIGKILL)
    write_jobs(eventd, 151, 200)  # changes while it is dead
    eventd.start()
    live = write_jobs(eventd, 201, 250)
    # Start-up catch-up sends what each op is at now: every job's final status arrives;
    # a status that was already stale when eventd came back may be skipped by design.
    finals = {f"{job}:success" for job in range(1, 201)}
    assert_nothing_lost(finals | live, queue.drain(idle=5))


def test_malformed_truncated_and_foreign_files_are_skipped(scratch):
    eventd, queue = scratch
    eventd.start()
    junk = {
        "job-9001": b"{not json",
        "job-9002": json.dumps({"id": 9002, "ops": [{"status": "success"}]})[:25].encode(),
        "job-9003": b"\x00\xff\xfe binary",
        "job-9004": json.dumps({"id": "x", "ops": "nope"}).encode(),
        "README": b"a foreign file",
    }
    for name, data in junk.items():
        (eventd.queue / name).write_bytes(data)
    (eventd.queue / "job-9005").mkdir()
    # The valid jobs come after the junk: once they are out, the junk was seen too.
    expected = write_jobs(eventd, 1, 5)
    assert_nothing_lost(expected, queue.drain(idle=3))
    assert eventd.alive(), "junk in the queue must not kill eventd"
    log = eventd.log_text()
    for name in ("job-9001", "job-9002", "job-9003", "job-9004"):
        assert name in log, f"{name} is reported in the log"
    assert "Traceback" not in log


def test_post_hook_with_the_broker_down_neither_blocks_nor_loses(lab, instance_name):
    tag = uuid.uuid4().hex[:8]
    queue = DurableQueue(f"test-hook-{tag}", exchange="ganeti", routing_key="ganeti.*.event.hook")
    queue.declare()
    name = instance_name()
    try:
        rabbit.pause()
        try:
            # The job succeeds although its post-hook's message cannot be published.
            add_instance(lab, name, template="diskless")
            assert name in {row["name"] for row in lab.instances()}
        finally:
            rabbit.resume()
        # eventd reconnects (with backoff) and publishes what the hook spooled.
        bodies = [json.loads(raw) for raw, _ in queue.drain(idle=15)]
        assert any(
            body.get("instance") == name and body.get("hpath") == "instance-add" for body in bodies
        ), bodies
    finally:
        queue.delete()
