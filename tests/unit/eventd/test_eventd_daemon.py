"""The running daemon on a scratch queue (real inotify, fake broker), master role, CLI."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
from eventd_helpers import JOBS, FakePublisher, archive, scratch_layout, write_job

from ganeti_ext.eventd import cli, master
from ganeti_ext.eventd.config import EventdConfig
from ganeti_ext.eventd.daemon import Eventd
from ganeti_ext.spool import OutgoingMessage, Spool


@pytest.fixture
def layout(tmp_path):
    return scratch_layout(tmp_path, archive_dir=True)


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


class Running:
    def __init__(self, layout, own_name="node1.ganeti.test"):
        self.publisher = FakePublisher()
        self.daemon = Eventd(EventdConfig(), layout, publisher=self.publisher)
        self.daemon.master.own_name = own_name
        self.daemon.master.refresh()
        self.thread = threading.Thread(target=self.daemon.run)

    def __enter__(self):
        self.thread.start()
        assert self.daemon.watching.wait(10), "the daemon watches the queue"
        return self

    def __exit__(self, *exc):
        self.daemon.request_stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


def test_live_job_versions_give_one_message_per_status(layout):
    with Running(layout) as running:
        for n in range(1, 7):
            shutil.copy(JOBS / f"instance-startup.{n}.json", layout.queue_dir / "job-33.tmp")
            (layout.queue_dir / "job-33.tmp").rename(layout.queue_dir / "job-33")
            time.sleep(0.15)  # versions a little apart, as Ganeti writes them
        wait_for(lambda: "cluster.ganeti.test:33:0:success" in running.publisher.ids)
        archive(layout.queue_dir, 33)
        write_job(layout.queue_dir, 34)  # a control: once it is out, the archive was seen
        wait_for(lambda: "cluster.ganeti.test:34:0:success" in running.publisher.ids)
    statuses = [body["status"] for _, body, _ in running.publisher.sent if body["jobId"] == 33]
    assert statuses == ["queued", "waiting", "running", "success"]


def test_malformed_files_do_not_stop_the_daemon(layout, caplog):
    with Running(layout) as running:
        (layout.queue_dir / "job-5").write_text('{"id": 5, "ops": [{"inp')
        (layout.queue_dir / "job-6").write_bytes(b"\x00garbage")
        write_job(layout.queue_dir, 7)
        wait_for(lambda: "cluster.ganeti.test:7:0:success" in running.publisher.ids)
    assert "skipping" in caplog.text
    assert running.publisher.ids == [
        f"cluster.ganeti.test:7:0:{status}"
        for status in ("queued", "waiting", "running", "success")
    ]


def test_live_job_first_seen_finished_gives_the_statuses_it_skipped(layout):
    with Running(layout) as running:
        shutil.copy(JOBS / "instance-startup.4.json", layout.queue_dir / "job-33.tmp")
        (layout.queue_dir / "job-33.tmp").rename(layout.queue_dir / "job-33")
        wait_for(lambda: "cluster.ganeti.test:33:0:waiting" in running.publisher.ids)
        write_job(layout.queue_dir, 34)  # first seen finished
        shutil.copy(JOBS / "instance-startup.6.json", layout.queue_dir / "job-33.tmp")
        (layout.queue_dir / "job-33.tmp").rename(layout.queue_dir / "job-33")
        wait_for(lambda: len(running.publisher.ids) == 8)
        write_job(layout.queue_dir, 35)  # a control: once it is out, 33 and 34 were seen
        wait_for(lambda: "cluster.ganeti.test:35:0:success" in running.publisher.ids)
    sent = [(body["jobId"], body["status"]) for _, body, _ in running.publisher.sent]
    assert sent[:2] == [(33, "queued"), (33, "waiting")]
    assert [s for j, s in sent if j == 33] == ["queued", "waiting", "running", "success"]
    assert [s for j, s in sent if j == 34] == ["queued", "waiting", "running", "success"]


def test_one_change_in_an_idle_daemon_is_published_at_once(layout):
    with Running(layout) as running:
        shutil.copy(JOBS / "instance-startup.1.json", layout.queue_dir / "job-33.tmp")
        (layout.queue_dir / "job-33.tmp").rename(layout.queue_dir / "job-33")
        wait_for(lambda: running.publisher.ids == ["cluster.ganeti.test:33:0:queued"])
    # Published alone, not held for a batch (how soon: bench/events measures latency).
    assert running.publisher.batches[0] == 1


def test_hand_over_spool_is_drained_even_when_not_master(layout):
    with Running(layout, own_name="node2.ganeti.test") as running:
        write_job(layout.queue_dir, 1)
        Spool(layout.spool_dir).put(OutgoingMessage("ganeti.snf.event.hook", {"x": 1}, "hook-1"))
        wait_for(lambda: running.publisher.ids == ["hook-1"])
        Spool(layout.spool_dir).put(OutgoingMessage("ganeti.snf.event.hook", {"x": 2}, "hook-2"))
        wait_for(lambda: "hook-2" in running.publisher.ids)  # a control, spooled after the job
    assert running.publisher.ids == ["hook-1", "hook-2"]  # no job message from a non-master


def test_failover_makes_the_candidate_publish(layout):
    write_job(layout.queue_dir, 1, status="running", end_timestamp=None)
    with Running(layout, own_name="node2.ganeti.test") as running:
        assert running.publisher.sent == []
        (layout.ganeti_data_dir / "ssconf_master_node").write_text("node2.ganeti.test\n")
        write_job(layout.queue_dir, 1)
        wait_for(lambda: "cluster.ganeti.test:1:0:success" in running.publisher.ids)


def test_master_check_follows_ssconf(tmp_path):
    path = tmp_path / "ssconf_master_node"
    path.write_text("node1.ganeti.test\n")
    check = master.MasterCheck(path, own_name="node2.ganeti.test")
    assert not check.is_master
    path.write_text("node2.ganeti.test\n")
    assert check.refresh() and check.is_master
    assert master.MasterCheck(path, own_name="x", forced=True).is_master


def test_check_config_prints_settings_without_passwords(tmp_path, capsys):
    conf = tmp_path / "eventd.conf"
    conf.write_text("[amqp]\nurls = amqp://u:s3cret@mq1:5672// amqp://u:s3cret@mq2:5672//\n")
    assert cli.main(["--config", str(conf), "--check-config"]) == 0
    out = capsys.readouterr().out
    assert "mq1" in out and "mq2" in out and "s3cret" not in out


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[amqp]\nurls = not-a-url\n", "[amqp] urls"),
        ("[amqp]\nretry_interval = soon\n", "[amqp] retry_interval"),
        ("[eventd]\nqueue_dir = relative\n", "[eventd] queue_dir"),
        ("[eventd]\nqueue = /x\n", "[eventd] queue"),
        ("[amqp]\nretry_interval = 5\nretry_max_interval = 1\n", "retry_max_interval"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path, text, where):
    from ganeti_ext.errors import ConfigError

    conf = tmp_path / "eventd.conf"
    conf.write_text(text)
    with pytest.raises(ConfigError) as caught:
        cli.main(["--config", str(conf), "--check-config"])
    assert str(conf) in str(caught.value) and where in str(caught.value)


def test_shipped_example_config_is_valid(capsys):
    from unit_helpers import REPO

    assert cli.main(["--config", str(REPO / "eventd" / "eventd.conf"), "--check-config"]) == 0
    assert "OK" in capsys.readouterr().out


def test_catch_up_only_cli_exit_status(layout, tmp_path, clean_logging):
    write_job(layout.queue_dir, 1)
    conf = tmp_path / "eventd.conf"
    conf.write_text(
        "[amqp]\nurls = amqp://guest:guest@127.0.0.1:1//\nconnect_timeout = 0.2\n"
        f"[eventd]\nganeti_data_dir = {layout.ganeti_data_dir}\n"
    )
    argv = [
        "--config",
        str(conf),
        "--catch-up-only",
        "--queue-dir",
        str(layout.queue_dir),
        "--state-dir",
        str(layout.state_dir),
        "--assume-master",
        "yes",
        "--log",
        "stderr",
    ]
    assert cli.main(argv) == cli.EXIT_QUEUED
    pending = Spool(layout.outbox_dir).pending()
    assert len(pending) == 1
    body = json.loads(pending[0].read_text())["body"]
    assert body["jobId"] == 1 and body["status"] == "success"
