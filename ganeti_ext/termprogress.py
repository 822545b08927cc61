"""Progress of long work on a terminal: bytes done, rate, time left, on one line.

Silent when stderr is not a terminal (cron, Ganeti, tests), so logs never fill with
carriage returns; commands print a summary line at the end either way.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

UPDATE_EVERY_S = 0.25
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human(size: float) -> str:
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def line(phase: str, done: int, total: int | None, elapsed: float) -> str:
    """One status line (pure): '<phase>: 1.0 GiB of 2.0 GiB (50%), 250.0 MiB/s, 4 s left'."""
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{phase}: {human(done)}"
    if total:
        text += f" of {human(total)} ({min(100.0, 100.0 * done / total):.0f}%)"
    text += f", {human(rate)}/s"
    if total and rate > 0 and done < total:
        text += f", {max(0, int((total - done) / rate))} s left"
    return text


class TerminalProgress:
    def __init__(self, stream: TextIO = sys.stderr, enabled: bool | None = None) -> None:
        self.stream = stream
        self.enabled = stream.isatty() if enabled is None else enabled
        self.phase = ""
        self.started = time.monotonic()
        self.last = 0.0
        self.width = 0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if phase != self.phase:
            self.phase, self.started, self.last = phase, now, 0.0
        if now - self.last < UPDATE_EVERY_S and (total is None or done < total):
            return
        self.last = now
        text = line(phase, done, total, now - self.started)
        self.stream.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
