import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from unit_helpers import REPO

from ganeti_ext import paths
from ganeti_ext.eventd import config as eventd_config
from ganeti_ext.progress import events, monitor
from ganeti_ext.spool import Spool


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


def lines(*objs):
    return b"".join(
        (json.dumps(o).encode() if not isinstance(o, bytes) else o) + b"\n" for o in objs
    )


def bodies(spool_dir):
    spool = Spool(spool_dir)
    return [spool.load(path).body for path in spool.pending()]


def pump_bytes(data, mon):
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_fd, data), os.close(write_fd)))
    writer.start()
    monitor.pump(read_fd, mon)
    writer.join()
    os.close(read_fd)


def test_splitter_cuts_overlong_lines_and_recovers():
    splitter = monitor.LineSplitter(limit=10)
    out = list(splitter.feed(b"short\n" + b"x" * 25))
    out += list(splitter.feed(b"yyy\nafter\n"))
    out += list(splitter.finish())
    assert [(line[:5], overlong) for line, overlong in out] == [
        (b"short", False),
        (b"xxxxx", True),
        (b"after", False),
    ]


def test_splitter_keeps_an_unterminated_last_line():
    splitter = monitor.LineSplitter()
    assert list(splitter.feed(b'{"a":1}')) == []
    assert list(splitter.finish()) == [(b'{"a":1}', False)]


def test_pump_spools_and_throttles(tmp_path):
    clock = Clock()
    mon = monitor.Monitor("snf-42", Spool(tmp_path), clock=clock)
    data = lines(
        {"type": "image-copy-progress", "position": 1, "total": 4},
        {"type": "image-copy-progress", "position": 2, "total": 4},  # same second: held
        b"garbage",
        {"type": "image-copy-progress", "position": 3, "total": 4},  # replaces the held one
        {"subtype": "task-start", "task": "FixPartitionTable"},
    )
    pump_bytes(data, mon)
    got = bodies(tmp_path)
    assert [(b["type"], b.get("progress")) for b in got] == [
        ("image-copy-progress", 25.0),
        ("image-copy-progress", 75.0),
        ("image-helper", None),
    ]
    assert (mon.spooled, mon.skipped, mon.lost) == (3, 1, 0)


def test_spool_failure_loses_events_but_keeps_reading(tmp_path):
    blocked = tmp_path / "spool"
    blocked.write_text("a file, not a directory")
    mon = monitor.Monitor("snf-42", Spool(blocked), clock=Clock())
    pump_bytes(lines(*({"type": "image-info", "messages": [str(i)]} for i in range(500))), mon)
    assert (mon.spooled, mon.lost) == (0, 500)


def run_shim(args, data, env=None, timeout=20):
    return subprocess.run(
        [sys.executable, str(REPO / "progress-monitor" / "snf-progress-monitor"), *args],
        input=data,
        env={"PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True,
        timeout=timeout,
    )


def test_shim_end_to_end(tmp_path):
    data = lines({"type": "image-info", "messages": ["hello"]})
    proc = run_shim(["--spool", str(tmp_path)], data, env={"INSTANCE_NAME": "snf-7"})
    assert proc.returncode == 0, proc.stderr
    (body,) = bodies(tmp_path)
    assert body["instance"] == "snf-7" and body["messages"] == ["hello"]


def test_shim_as_upstream_snf_image_runs_it(tmp_path):
    """`$PROGRESS_MONITOR "$instance"` with snf-image's own lines (timestamp, warning)."""
    data = lines(
        {"type": "image-info", "messages": ["Image size: 2 GiB"], "timestamp": 1700000000.1},
        {"type": "image-warning", "messages": ["no swap"], "timestamp": 1700000000.2},
        {"type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable"},
    )
    proc = run_shim(["snf-8", "--spool", str(tmp_path)], data)
    assert proc.returncode == 0, proc.stderr
    got = bodies(tmp_path)
    assert [body["type"] for body in got] == ["image-info", "image-warning", "image-helper"]
    assert {body["instance"] for body in got} == {"snf-8"}


def test_spool_follows_eventds_configured_state_dir(tmp_path):
    conf = tmp_path / "eventd.conf"
    conf.write_text(f"[eventd]\nstate_dir = {tmp_path / 'state'}\n")
    where = paths.DEFAULT.under(tmp_path / "root")
    where = dataclasses.replace(where, eventd_conf=conf)
    assert eventd_config.spool_dir(where) == tmp_path / "state" / "spool"
    assert (
        eventd_config.spool_dir(paths.DEFAULT.under(tmp_path))
        == paths.DEFAULT.under(tmp_path).eventd_spool_dir
    )  # no configuration file: the default


def test_without_an_instance_stdin_is_still_drained(tmp_path):
    data = lines(*({"type": "image-info", "messages": ["x" * 100]} for _ in range(5000)))
    proc = run_shim(["--spool", str(tmp_path)], data)  # > pipe buffer: must be read
    assert proc.returncode == monitor.EXIT_USAGE
    assert b"INSTANCE_NAME" in proc.stderr and bodies(tmp_path) == []


def test_unwritable_spool_exits_non_zero_after_eof(tmp_path):
    blocked = tmp_path / "spool"
    blocked.write_text("")
    proc = run_shim(
        ["--instance", "snf-7", "--spool", str(blocked)],
        lines({"type": "image-info", "messages": ["x"]}),
    )
    assert proc.returncode == monitor.EXIT_LOST and b"cannot spool" in proc.stderr


def test_held_progress_goes_out_without_more_input(tmp_path):
    # The writer pauses after a burst: the last progress must not wait for EOF.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "progress-monitor" / "snf-progress-monitor"),
            "--instance",
            "snf-7",
            "--spool",
            str(tmp_path),
            "--interval",
            "0.2",
        ],
        stdin=subprocess.PIPE,
        env={"PYTHONPATH": str(REPO)},
    )
    try:
        proc.stdin.write(lines(*({"type": events.COPY_PROGRESS, "progress": p} for p in (1, 2, 3))))
        proc.stdin.flush()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if [b.get("progress") for b in bodies(tmp_path)] == [1.0, 3.0]:
                break
            time.sleep(0.05)
        assert [b.get("progress") for b in bodies(tmp_path)] == [1.0, 3.0]
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("name", ["", "-x"])
def test_unusable_instance_name(tmp_path, name):
    proc = run_shim(["--instance", name, "--spool", str(tmp_path)], b"")
    assert proc.returncode == monitor.EXIT_USAGE
