"""Step-by-step progress with timings; a failing step names itself and the reason."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from labkit import settings
from labkit.sh import LabError, log


class StepFailed(Exception):
    def __init__(self, title: str, reason: str) -> None:
        super().__init__(f"step '{title}' failed: {reason}")
        self.title = title
        self.reason = reason


def say(text: str) -> None:
    print(f"[lab] {text}", flush=True)


@contextmanager
def step(title: str) -> Iterator[None]:
    started = time.monotonic()
    say(f"... {title}")
    log(f"=== step: {title}")
    try:
        yield
    except LabError as exc:
        elapsed = time.monotonic() - started
        say(f"FAILED {title} after {elapsed:.1f} s")
        log(f"=== step failed: {title}: {exc}")
        raise StepFailed(title, str(exc)) from exc
    elapsed = time.monotonic() - started
    say(f"ok  {title} ({elapsed:.1f} s)")


def fail(exc: StepFailed) -> int:
    print(
        f"[lab] error: {exc}\n[lab] full command log: {settings.LOG_FILE}",
        file=sys.stderr,
        flush=True,
    )
    return 1
