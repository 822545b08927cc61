"""Work directories under <store>/tmp: one per running operation, locked while it runs.

A crash (kill -9, power loss) leaves the directory behind with its lock released, so any
later operation can tell an interrupted operation's debris from a live one's and remove
it: everything an operation makes is invisible until its single commit (a rename out of
its work directory), so removing the debris never loses anything that was promised.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# A hidden (still being set up) directory, or one without a lock file, is younger than
# this only while its maker is between mkdir and rename (microseconds); an older one was
# interrupted there.
UNLOCKED_GRACE_S = 60.0


class Operation:
    """A work directory held by this process until `close()` (a context manager)."""

    def __init__(self, tmp_dir: Path, kind: str) -> None:
        host = socket.gethostname().split(".", 1)[0] or "node"
        name = f"{kind}-{host}-{os.getpid()}-{secrets.token_hex(4)}"
        # Made under a hidden name and locked before it gets its real one: a reaper never
        # sees it unlocked (hidden entries it judges by age alone).
        hidden = tmp_dir / f".{name}"
        hidden.mkdir(mode=0o700)
        self._lock_fd = os.open(hidden / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        self.path = tmp_dir / name
        os.rename(hidden, self.path)

    def __enter__(self) -> Operation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove what is left in the work directory (committed parts were moved out)."""
        if self._lock_fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._lock_fd)
        self._lock_fd = -1


def is_abandoned(directory: Path, now: float | None = None) -> bool:
    """True when no live process holds `directory`'s lock (its operation was interrupted)."""
    if directory.name.startswith("."):
        return _older_than_grace(directory, now)
    try:
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return _older_than_grace(directory, now)
    except (NotADirectoryError, IsADirectoryError):
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _older_than_grace(directory: Path, now: float | None) -> bool:
    try:
        age = (time.time() if now is None else now) - directory.lstat().st_mtime
    except FileNotFoundError:
        return False
    return age > UNLOCKED_GRACE_S


def abandoned(tmp_dir: Path) -> list[Path]:
    """Work directories (and stray files) of interrupted operations."""
    try:
        entries = sorted(tmp_dir.iterdir())
    except FileNotFoundError:
        return []
    return [entry for entry in entries if not entry.is_dir() or is_abandoned(entry)]


def reap(tmp_dir: Path) -> list[Path]:
    """Remove interrupted operations' debris; returns what was removed."""
    removed = []
    for entry in abandoned(tmp_dir):
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        log.info("removed %s, left by an interrupted operation", entry)
        removed.append(entry)
    return removed
