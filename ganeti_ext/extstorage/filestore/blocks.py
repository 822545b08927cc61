"""Content-addressed blocks: written once under their SHA-256, shared, never changed.

An operation collects the blocks it will reference in its work directory: new blocks
are written there (sparse: all-zero 64 KiB runs stay holes), blocks the store already
has are hard-linked there ("pinned"), so garbage collection removing the store's name
for a block meanwhile cannot take the data away. The commit links them all into
<store>/blocks/<aa>/<sha256> under the store lock, then the caller writes its map.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from ganeti_ext.extstorage.filestore.layout import Layout
from ganeti_ext.extstorage.filestore.reflink import clone_range
from ganeti_ext.fsutil import sync_directory

SPARSE_CHUNK = 64 * 1024
_ZERO_CHUNK = bytes(SPARSE_CHUNK)
BLOCK_MODE = 0o444


def is_zero(data: bytes | memoryview) -> bool:
    view = memoryview(data)
    for start in range(0, len(view), SPARSE_CHUNK):
        chunk = view[start : start + SPARSE_CHUNK]
        if chunk != _ZERO_CHUNK[: len(chunk)]:
            return False
    return True


def block_digest(data: bytes | memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


class BlockCollector:
    """The blocks one operation references, gathered in `<work>/blocks`."""

    def __init__(self, layout: Layout, work_dir: Path, block_size: int) -> None:
        self.layout = layout
        self.block_size = block_size
        self.dir = work_dir / "blocks"
        self.dir.mkdir(exist_ok=True)
        self.collected: set[str] = set()
        self.new_blocks = 0
        self.new_bytes = 0

    def path(self, digest: str) -> Path:
        return self.dir / digest

    def _pin(self, digest: str) -> bool:
        """Link the store's copy of `digest` into the work directory; False if absent."""
        try:
            os.link(self.layout.block(digest), self.path(digest))
        except FileNotFoundError:
            return False
        except FileExistsError:
            pass
        return True

    def analyze(self, data: bytes | memoryview) -> str | None:
        """The block's name, or None for a zero block (CPU only: safe in worker threads)."""
        if is_zero(data):
            return None
        return block_digest(_padded(data, self.block_size))

    def store(self, digest: str, data: bytes | memoryview) -> None:
        """Collect block `digest` whose bytes are `data` (padded to the block size)."""
        if digest in self.collected or self._pin(digest):
            self.collected.add(digest)
            return
        _write_sparse(self.path(digest), data, self.block_size)
        self.collected.add(digest)
        self.new_blocks += 1
        self.new_bytes += len(data)

    def add(self, data: bytes | memoryview) -> str | None:
        """Collect one block's bytes; returns its name, None for a zero block."""
        digest = self.analyze(data)
        if digest is not None:
            self.store(digest, data)
        return digest

    def add_cloned(self, digest: str, src_fd: int, offset: int, length: int) -> None:
        """Collect a block whose bytes are [offset, offset+length) of an open store file.

        The caller has hashed them; the new block shares that file's extents (no copy).
        The range is whole file-system blocks, or ends at that file's end (where the
        kernel accepts a partial block).
        """
        if digest in self.collected or self._pin(digest):
            self.collected.add(digest)
            return
        target = self.path(digest)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BLOCK_MODE)
        try:
            clone_range(src_fd, offset, length, fd, 0)
            os.ftruncate(fd, self.block_size)
        except BaseException:
            os.close(fd)
            target.unlink(missing_ok=True)
            raise
        os.close(fd)
        self.collected.add(digest)
        self.new_blocks += 1
        self.new_bytes += length

    def commit(self) -> None:
        """Give every collected block its store name (call under the store lock).

        New blocks reach the disk before any name points at them: a crash never leaves a
        block file whose bytes do not match its name.
        """
        if self.new_blocks:
            sync_file_system(self.dir)
        fanouts = set()
        for digest in self.collected:
            target = self.layout.block(digest)
            if target.parent not in fanouts:
                target.parent.mkdir(mode=0o700, exist_ok=True)
                fanouts.add(target.parent)
            try:
                os.link(self.path(digest), target)
            except FileExistsError:
                pass
        for directory in fanouts:
            sync_directory(directory)


def missing(layout: Layout, digests: Iterable[str]) -> list[str]:
    return [digest for digest in digests if not layout.block(digest).exists()]


def _padded(data: bytes | memoryview, block_size: int) -> bytes | memoryview:
    # The last block of an image may be short: it is named and stored as if zero-padded.
    if len(data) == block_size:
        return data
    return bytes(data) + bytes(block_size - len(data))


def _write_sparse(path: Path, data: bytes | memoryview, block_size: int) -> None:
    view = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, BLOCK_MODE)
    try:
        for start in range(0, len(view), SPARSE_CHUNK):
            chunk = view[start : start + SPARSE_CHUNK]
            if chunk != _ZERO_CHUNK[: len(chunk)]:
                written = 0
                while written < len(chunk):
                    written += os.pwrite(fd, chunk[written:], start + written)
        os.ftruncate(fd, block_size)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def sync_file_system(path: Path) -> None:
    """Flush the whole file system `path` is on (one syncfs instead of an fsync per file)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
