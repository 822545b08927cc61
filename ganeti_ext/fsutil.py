"""Durable file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ganeti_ext.errors import GanetiExtError


def sync_directory(directory: str | os.PathLike[str]) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int, fsync: bool = True) -> None:
    """Write `data` to a hidden temporary file beside `path`, then rename it over `path`.

    The mode is set explicitly, whatever the caller's umask (Ganeti runs its scripts with
    077, and other users may have to read the file). With fsync, data and directory
    entry are on disk when this returns. On failure the temporary file is removed.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if fsync:
        sync_directory(path.parent)


@contextmanager
def exclusive_lock(
    path: Path,
    *,
    timeout: float,
    busy: str,
    mode: int = 0o600,
    error: type[GanetiExtError] = GanetiExtError,
) -> Iterator[None]:
    """Hold an exclusive flock on `path` (created if needed) for the block.

    Waits up to `timeout` seconds, then raises `error`("<busy>: <path> still locked
    after N s"). Closing the file releases the lock, so a killed holder never leaves it.
    """
    with file_lock(path, timeout=timeout, busy=busy, mode=mode, error=error):
        yield


@contextmanager
def file_lock(
    path: Path,
    *,
    timeout: float,
    busy: str,
    shared: bool = False,
    mode: int = 0o600,
    error: type[GanetiExtError] = GanetiExtError,
) -> Iterator[None]:
    """Hold a shared or exclusive flock on `path` (created if needed) for the block.

    The lock file may be deleted by whoever holds it exclusively (a store removing a
    volume's lock): a waiter that then gets the lock on the unlinked inode notices that
    the path now names another file (or none) and locks again, so two holders never
    lock different files under the same name.
    """
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, mode)
        try:
            while True:
                try:
                    fcntl.flock(fd, operation | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise error(f"{busy}: {path} still locked after {timeout:g} s") from None
                    time.sleep(0.005)
            if _same_file(fd, path):
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # locked a file that was unlinked meanwhile: lock the new one
    try:
        yield
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
