"""Turning decoded image bytes into blocks and a committed image (or snapshot) map.

Two ways in: a stream of chunks (raw or decompressed data: every non-zero block is
written once), or a sparse file already on the store's file system (qcow2 decoded by
qemu-img, a snapshot's frozen bytes: holes are skipped unread, and new blocks share the
file's extents instead of being written again). Hashing runs in worker threads
(hashlib releases the GIL), in order, a few blocks ahead of the writer.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore import maps
from ganeti_ext.extstorage.filestore.blocks import BlockCollector
from ganeti_ext.extstorage.filestore.compose import compose
from ganeti_ext.extstorage.filestore.layout import DATA_FILE, MAP_FILE
from ganeti_ext.extstorage.filestore.work import Operation

Progress = Callable[[int], None]
HASH_WORKERS = 2
AHEAD = 4  # blocks hashed ahead of the one being stored


class Ingest:
    def __init__(self, store, op: Operation) -> None:
        self.store = store
        self.op = op
        self.block_size: int = store.block_size
        self.collector = BlockCollector(store.layout, op.path, self.block_size)
        self.blocks: list[str | None] = []
        self.size = 0

    # --- ways in ----------------------------------------------------------------------

    def from_chunks(
        self, chunks: Iterable[bytes], *, limit: int, what: str, progress: Progress | None = None
    ) -> None:
        """Blocks from a stream of decoded bytes; more than `limit` bytes is an error."""
        with ThreadPoolExecutor(HASH_WORKERS) as pool:
            queue: deque[tuple[Future[str | None], bytes]] = deque()
            for block in _reblocked(chunks, self.block_size):
                self.size += len(block)
                if self.size > limit:
                    raise ValidationError(
                        f"{what} decodes to more than {limit} bytes ([images] max_size); refused"
                    )
                queue.append((pool.submit(self.collector.analyze, block), block))
                if len(queue) > AHEAD:
                    self._store_next(queue)
                if progress is not None:
                    progress(self.size)
            while queue:
                self._store_next(queue)

    def from_file(
        self, path: Path, size: int, *, clone: bool = True, progress: Progress | None = None
    ) -> None:
        """Blocks from a (sparse) file; holes are skipped unread.

        With `clone` (the file is on the store's file system) new blocks share the
        file's extents; otherwise they are written.
        """
        self.size = size
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            with ThreadPoolExecutor(HASH_WORKERS) as pool:
                queue: deque[tuple[int, int, Future[str | None] | None, bytes | None]] = deque()
                for offset in range(0, size, self.block_size):
                    length = min(self.block_size, size - offset)
                    if _is_hole(fd, offset, length):
                        queue.append((offset, length, None, None))
                    else:
                        data = os.pread(fd, length, offset)
                        future = pool.submit(self.collector.analyze, data)
                        queue.append((offset, length, future, None if clone else data))
                        if len(queue) > AHEAD:
                            self._clone_next(queue, fd)
                        continue
                    if len(queue) > AHEAD:
                        self._clone_next(queue, fd)
                    if progress is not None:
                        progress(offset + length)
                while queue:
                    self._clone_next(queue, fd)
        finally:
            os.close(fd)

    # --- the commit -------------------------------------------------------------------

    def stage(
        self, kind: str, name: str, source: dict, created: str | None = None
    ) -> tuple[Path, maps.Map]:
        """Compose the origin's data file from the blocks and write its map, unpublished."""
        staged = self.op.path / "origin"
        staged.mkdir(exist_ok=True)
        store_map = maps.Map(
            kind=kind,
            name=name,
            size=self.size,
            block_size=self.block_size,
            blocks=tuple(self.blocks),
            created=created or maps.now_iso(),
            source=source,
        )
        data = staged / DATA_FILE
        data.unlink(missing_ok=True)
        compose(data, self.size, self.block_size, self.blocks, self.collector.path)
        maps.write(staged / MAP_FILE, store_map)
        return staged, store_map

    # --- helpers ----------------------------------------------------------------------

    def _store_next(self, queue: deque) -> None:
        future, block = queue.popleft()
        digest = future.result()
        if digest is not None:
            self.collector.store(digest, block)
        self.blocks.append(digest)

    def _clone_next(self, queue: deque, fd: int) -> None:
        offset, length, future, data = queue.popleft()
        digest = None if future is None else future.result()
        if digest is not None:
            if data is None:
                self.collector.add_cloned(digest, fd, offset, length)
            else:
                self.collector.store(digest, data)
        self.blocks.append(digest)


def _reblocked(chunks: Iterable[bytes], block_size: int) -> Iterable[bytes]:
    """The stream cut into block-sized pieces (the last one may be short)."""
    parts: list[bytes] = []
    held = 0
    for chunk in chunks:
        while chunk:
            take = min(len(chunk), block_size - held)
            parts.append(chunk[:take] if take < len(chunk) else chunk)
            chunk = chunk[take:] if take < len(chunk) else b""
            held += take
            if held == block_size:
                yield parts[0] if len(parts) == 1 else b"".join(parts)
                parts, held = [], 0
    if held:
        yield b"".join(parts)


def _is_hole(fd: int, offset: int, length: int) -> bool:
    """True when [offset, offset+length) holds no data (reads as zeros, unread)."""
    try:
        data_at = os.lseek(fd, offset, os.SEEK_DATA)
    except OSError:  # ENXIO: no data at or after offset
        return True
    return data_at >= offset + length
