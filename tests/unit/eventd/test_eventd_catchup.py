"""State DB and catch-up: first start, restart without re-send, missed changes, failover."""

from __future__ import annotations

import time

import pytest
from eventd_helpers import FakePublisher, archive, scratch_layout, write_job

from ganeti_ext.eventd.config import EventdConfig
from ganeti_ext.eventd.daemon import Eventd
from ganeti_ext.eventd.state import StateDB


@pytest.fixture
def layout(tmp_path):
    return scratch_layout(tmp_path)


def run_catch_up(layout, publisher=None, master=True):
    publisher = publisher or FakePublisher()
    daemon = Eventd(EventdConfig(), layout, assume_master=master, publisher=publisher)
    try:
        left = daemon.catch_up_only()
    finally:
        daemon.state.close()
    return publisher, left


def test_first_start_does_not_replay_the_archive(layout):
    for job_id in (1, 2, 3):
        write_job(layout.queue_dir, job_id, archived=True)
    write_job(layout.queue_dir, 4)
    write_job(layout.queue_dir, 5, status="running", end_timestamp=None)
    publisher, left = run_catch_up(layout)
    assert left == 0
    assert publisher.ids == ["cluster.ganeti.test:4:0:success", "cluster.ganeti.test:5:0:running"]
    assert StateDB(layout.state_db).count() == 5


def test_restart_sends_nothing_twice_and_only_what_was_missed(layout):
    write_job(layout.queue_dir, 1)
    write_job(layout.queue_dir, 2, status="running", end_timestamp=None)
    run_catch_up(layout)
    publisher, _ = run_catch_up(layout)
    assert publisher.sent == []
    # While stopped: job 2 finished and was archived, job 3 came and went to the archive.
    write_job(layout.queue_dir, 2)
    archive(layout.queue_dir, 2)
    write_job(layout.queue_dir, 3, archived=True)
    publisher, _ = run_catch_up(layout)
    assert publisher.ids == ["cluster.ganeti.test:2:0:success", "cluster.ganeti.test:3:0:success"]


def test_broker_down_keeps_messages_until_it_returns(layout):
    write_job(layout.queue_dir, 1)
    dead = FakePublisher()
    dead.down = True
    _, left = run_catch_up(layout, dead)
    assert left == 1 and dead.sent == []
    publisher, left = run_catch_up(layout)
    assert left == 0
    assert publisher.ids == ["cluster.ganeti.test:1:0:success"]


def test_bad_files_are_skipped(layout):
    layout.queue_dir.mkdir(parents=True)
    (layout.queue_dir / "job-7").write_text('{"id": 7, "ops": [')
    (layout.queue_dir / "job-8").write_text("not json at all")
    (layout.queue_dir / "job-9").write_bytes(b"\x00\x01")
    (layout.queue_dir / "random-file").write_text("x")
    write_job(layout.queue_dir, 10)
    publisher, _ = run_catch_up(layout)
    assert publisher.ids == ["cluster.ganeti.test:10:0:success"]


def test_not_master_records_quietly_and_replays_recent_changes_on_takeover(layout):
    write_job(layout.queue_dir, 1)
    publisher, _ = run_catch_up(layout, master=False)
    assert publisher.sent == []
    daemon = Eventd(EventdConfig(), layout, assume_master=True, publisher=FakePublisher())
    from ganeti_ext.eventd import catchup

    # Job 1's timestamps are from the capture (2026-11); a window that reaches them:
    window = time.time() - 1795241000
    catchup.replay_after_failover(
        layout.queue_dir, daemon.state, daemon.processor, window=max(window, 0) + 10
    )
    daemon.drainer.drain_once()
    assert daemon.drainer.publisher.ids == ["cluster.ganeti.test:1:0:success"]
    daemon.state.close()


def test_reused_job_id_of_a_recreated_cluster_is_a_new_job(layout):
    write_job(layout.queue_dir, 1, status="running", end_timestamp=None)
    run_catch_up(layout)
    # Same id, different received time: another job.
    write_job(layout.queue_dir, 1, status="running", end_timestamp=None)
    import json

    path = layout.queue_dir / "job-1"
    raw = json.loads(path.read_text())
    raw["received_timestamp"] = [1795249999, 1]
    path.write_text(json.dumps(raw))
    publisher, _ = run_catch_up(layout)
    assert publisher.ids == ["cluster.ganeti.test:1:0:running"]


def test_cluster_uuid_change_resets_the_state(layout):
    (layout.ganeti_data_dir / "config.data").write_text('{"cluster": {"uuid": "A"}}')
    write_job(layout.queue_dir, 1)
    run_catch_up(layout)
    assert run_catch_up(layout)[0].sent == []
    (layout.ganeti_data_dir / "config.data").write_text('{"cluster": {"uuid": "B"}}')
    publisher, _ = run_catch_up(layout)
    assert publisher.ids == ["cluster.ganeti.test:1:0:success"]
