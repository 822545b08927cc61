"""A scratch eventd on a scratch job queue, for benchmarks and fault tests.

It runs the installed daemon (the program its systemd unit starts) in the master's
namespace, publishing to an exchange of its own on the lab's broker, while job files
are written into its queue the way Ganeti writes them (temp file, then rename).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from labkit import settings
from labkit.sh import LabError, in_node

EVENTD = "/usr/sbin/snf-ganeti-eventd"
STATUSES = ("queued", "running", "success")


def now_pair() -> tuple[int, int]:
    t = time.time()
    return int(t), int((t - int(t)) * 1e6)


def job_file(job_id: int, status: str, received: tuple[int, int], now: tuple[int, int]) -> str:
    """A one-op OP_TEST_DELAY job in the given status, with Ganeti's fields and timestamps."""
    op = {
        "input": {"OP_ID": "OP_TEST_DELAY", "duration": 0.0, "dry_run": False},
        "status": status,
        "result": None,
        "log": [],
        "priority": 0,
        "start_timestamp": received if status != "queued" else None,
        "exec_timestamp": now if status in ("running", "success") else None,
        "end_timestamp": now if status == "success" else None,
    }
    job = {
        "id": job_id,
        "ops": [op],
        "received_timestamp": received,
        "start_timestamp": op["start_timestamp"],
        "end_timestamp": op["end_timestamp"],
    }
    return json.dumps(job)


class ScratchEventd:
    def __init__(self, root: Path, exchange: str) -> None:
        self.root = root
        self.exchange = exchange
        self.queue = root / "queue"
        self.state = root / "state"
        self.log = root / "eventd.log"
        (self.queue / "archive").mkdir(parents=True, exist_ok=True)
        self.state.mkdir(exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self._received: dict[int, tuple[int, int]] = {}

    def argv(self, *extra: str) -> list[str]:
        conf = self.root / "eventd.conf"
        conf.write_text(f"[amqp]\nurls = {settings.AMQP_URL}\nexchange = {self.exchange}\n")
        return [
            EVENTD,
            "--foreground",
            "--config",
            str(conf),
            "--queue-dir",
            str(self.queue),
            "--state-dir",
            str(self.state),
            "--assume-master",
            "yes",
            "--log",
            str(self.log),
            *extra,
        ]

    def start(self, *extra: str, timeout: float = 30.0) -> subprocess.Popen:
        """Start it and wait until it watches the queue (its log says so)."""
        already = self.log_text().count("watching ")
        self.proc = subprocess.Popen(
            in_node(settings.MASTER, self.argv(*extra)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while self.log_text().count("watching ") <= already:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"eventd did not start watching {self.queue}:\n{self.log_text()}")
            time.sleep(0.05)
        return self.proc

    def run_catch_up(self) -> subprocess.Popen:
        return subprocess.Popen(
            in_node(settings.MASTER, self.argv("--catch-up-only")),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)

    def alive(self) -> bool:
        return bool(self.proc) and self.proc.poll() is None

    def write(self, job_id: int, status: str) -> None:
        received = self._received.setdefault(job_id, now_pair())
        tmp = self.queue / f"job-{job_id}-{os.getpid()}-1.tmp"
        tmp.write_text(job_file(job_id, status, received, now_pair()))
        tmp.rename(self.queue / f"job-{job_id}")

    def write_wave(self, job_ids: range) -> list[str]:
        """Every status of a wave of jobs, as Ganeti's job processes rewrite them; returns
        the (job:status) keys written."""
        keys = []
        for status in STATUSES:
            for job_id in job_ids:
                self.write(job_id, status)
                keys.append(f"{job_id}:{status}")
        return keys

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""
