"""Progress of one deployment, as newline-delimited JSON to snf-progress-monitor.

The monitor is started as upstream snf-image started its own (`<monitor> <instance>`)
and publishes what it reads to AMQP through eventd. Progress must never stop a
deployment: if the monitor is missing or dies, events are only logged.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from typing import Any

from ganeti_ext.runner import BASE_ENV

log = logging.getLogger(__name__)


class Progress:
    def __init__(self, instance: str, monitor: str, interval: float = 3.0) -> None:
        self.instance = instance
        self.interval = interval
        self.last_copy = 0.0
        self.process: subprocess.Popen | None = None
        if monitor:
            try:
                self.process = subprocess.Popen(
                    [monitor, instance],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=dict(BASE_ENV),
                    close_fds=True,
                )
            except OSError as err:
                log.warning("progress monitor %s not started: %s", monitor, err.strerror)

    def send(self, event: dict[str, Any]) -> None:
        log.info("progress: %s", json.dumps(event, sort_keys=True))
        if self.process is None or self.process.stdin is None:
            return
        try:
            self.process.stdin.write((json.dumps(event) + "\n").encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            log.warning("the progress monitor went away; progress is only logged from now on")
            self.process = None

    def copy(self, position: int, total: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last_copy < self.interval:
            return
        self.last_copy = now
        percent = round(100.0 * min(position, total) / total, 1) if total else 100.0
        self.send(
            {
                "type": "image-copy-progress",
                "position": position,
                "total": total,
                "progress": percent,
            }
        )

    def info(self, text: str) -> None:
        self.send({"type": "image-info", "messages": [text]})

    def error(self, text: str) -> None:
        self.send({"type": "image-error", "messages": [text]})

    def helper(self, subtype: str, task: str | None = None, text: str | None = None) -> None:
        event: dict[str, Any] = {"type": "image-helper", "subtype": subtype}
        if task:
            event["task"] = task
        if text:
            event["messages"] = [text]
        self.send(event)

    def close(self) -> None:
        if self.process is None:
            return
        try:
            if self.process.stdin:
                self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
        self.process = None
