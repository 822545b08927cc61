"""Durable file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import os
from pathlib import Path


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
