"""Files made of other files' extents: a volume from an origin, an origin from blocks.

Nothing here copies data: FICLONE shares a whole file, FICLONERANGE one block. A
file system that cannot do it (ext4, tmpfs, or two file systems) is named in the error.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore.reflink import NO_REFLINK_ERRNOS, clone_file, clone_range


def reflink_error(path: Path, err: OSError) -> ValidationError:
    return ValidationError(
        f"cannot share extents into {path}: {err.strerror}; the store must be on XFS "
        "(reflink=1) or btrfs, all of it on one file system"
    )


def set_size(fd: int, size: int, what: str = "volume") -> None:
    """ftruncate, with "too big for this file system" as a clear error naming `what`."""
    try:
        os.ftruncate(fd, size)
    except (OSError, OverflowError) as err:
        if isinstance(err, OverflowError) or err.errno in (errno.EFBIG, errno.EINVAL):
            raise ValidationError(
                f"{what}: {size >> 20} MiB is more than the store's file system allows for one file"
            ) from None
        raise


def clone_whole(source: Path, target: Path, size: int | None = None, what: str = "volume") -> None:
    """Create `target` as a copy-on-write copy of `source`, then set its size if given."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with _new_file(target) as fd:
            with _sharing_into(target):
                clone_file(src, fd)
            if size is not None:
                set_size(fd, size, what)
            os.fsync(fd)
    finally:
        os.close(src)


def compose(
    target: Path,
    size: int,
    block_size: int,
    blocks: Sequence[str | None],
    block_path: Callable[[str], Path],
) -> None:
    """Create `target` of `size` bytes from the ordered blocks (None: a hole of zeros)."""
    with _new_file(target) as fd:
        os.ftruncate(fd, size)
        for index, digest in enumerate(blocks):
            if digest is None:
                continue
            offset = index * block_size
            length = min(block_size, size - offset)
            if length <= 0:
                break
            src = os.open(block_path(digest), os.O_RDONLY | os.O_CLOEXEC)
            try:
                with _sharing_into(target):
                    clone_range(src, 0, _whole_fs_blocks(length, offset, size), fd, offset)
            finally:
                os.close(src)
        # A tail rounded up to a whole file-system block may have pushed the end out.
        os.ftruncate(fd, size)
        os.fsync(fd)


@contextlib.contextmanager
def _new_file(target: Path) -> Iterator[int]:
    """A new file at `target` (which must not exist yet), gone again if the block fails:
    a half-made volume or origin is never left behind."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        yield fd
    except BaseException:
        os.close(fd)
        target.unlink(missing_ok=True)
        raise
    os.close(fd)


@contextlib.contextmanager
def _sharing_into(target: Path) -> Iterator[None]:
    """A file system that cannot share extents becomes the error that says so."""
    try:
        yield
    except OSError as err:
        if err.errno in NO_REFLINK_ERRNOS:
            raise reflink_error(target, err) from None
        raise


def _whole_fs_blocks(length: int, offset: int, size: int) -> int:
    # FICLONERANGE wants whole file-system blocks unless the range ends at the source's
    # end; the block files are full-sized, so round a short tail up to 4 KiB.
    if offset + length < size:
        return length
    return (length + 4095) // 4096 * 4096
