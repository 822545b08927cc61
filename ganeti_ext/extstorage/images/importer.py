"""`archipelago image import`: a file or URL, in any supported format, into the store.

The data path: source -> (xz | zstd | gzip) -> raw stream -> blocks; or, for qcow2,
source -> (decompressed into the operation's work directory unless already a local file)
-> header checks -> qemu-img convert to a sparse raw file in the work directory ->
blocks sharing that file's extents. Nothing is mounted or parsed beyond the container
formats. The image becomes visible only after the checksum matched and its blocks and
map are durable; any failure (including a full file system) leaves nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore import maps
from ganeti_ext.extstorage.filestore.ingest import Ingest
from ganeti_ext.extstorage.filestore.layout import check_name
from ganeti_ext.extstorage.filestore.store import FileStore
from ganeti_ext.extstorage.images import formats, qemuimg
from ganeti_ext.extstorage.images.decode import decoded, peek
from ganeti_ext.extstorage.images.sources import Source, open_source
from ganeti_ext.runner import DEFAULT_RUNNER, Runner

log = logging.getLogger(__name__)

QEMU_IMG_TIMEOUT = 6 * 3600.0

# (phase, bytes done, bytes in all or None): what a progress display is told.
ProgressFn = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class ImportRequest:
    source: str
    name: str
    sha256: str | None = None
    max_size: int = 1024**4
    timeout: float = 60.0


def check_sha256(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if len(value) != 64 or any(char not in "0123456789abcdef" for char in value):
        raise ValidationError("--sha256: must be 64 hexadecimal digits")
    return value


def import_image(
    store: FileStore,
    request: ImportRequest,
    *,
    progress: ProgressFn | None = None,
    runner: Runner = DEFAULT_RUNNER,
) -> tuple[maps.Map, bool]:
    """Import; returns the image's map and whether it was new (False: already there)."""
    name = check_name("image", request.name)
    wanted = check_sha256(request.sha256)
    store.check()
    existing = store.map(name)
    if existing is not None:
        if existing.kind == "image" and wanted and existing.source.get("sha256") == wanted:
            log.info("image %s is already imported with that checksum", name)
            return existing, False
        raise ValidationError(
            f"image {name} already exists ({existing.kind} from {existing.created}); images "
            "are immutable: remove it first or choose another name"
        )
    if store.volume(name) is not None:
        raise ValidationError(f"image {name}: a volume has that name")
    with store.operation("import", f"image {name}") as op:
        source = open_source(request.source, timeout=request.timeout)
        try:
            ingest = Ingest(store, op)
            kind, hashed = _decode_into(ingest, source, request, progress, runner)
            if hashed:
                _drain(source)  # a checksum covers the whole source, trailing bytes too
        finally:
            source.close()
        got = source.sha256.hexdigest() if hashed else None
        if wanted is not None and got != wanted:
            raise ValidationError(
                f"image {name}: SHA-256 of {source.description} is {got}, not {wanted}; "
                "nothing was imported"
            )
        record = {
            "url" if "://" in source.description else "file": source.description,
            "sha256": got,
            "format": kind,
            "bytes": source.size if source.size is not None else source.position,
        }
        if progress is not None:
            progress("commit", ingest.size, ingest.size)
        staged, store_map = ingest.stage("image", name, record)
        store.publish(staged, name, ingest.collector)
    log.info(
        "imported image %s from %s: %d bytes, %d new blocks",
        name,
        source.description,
        store_map.size,
        ingest.collector.new_blocks,
    )
    return store_map, True


def _decode_into(
    ingest: Ingest,
    source: Source,
    request: ImportRequest,
    progress: ProgressFn | None,
    runner: Runner,
) -> tuple[str, bool]:
    """Feed the source's decoded bytes into `ingest`.

    Returns the format it had, and whether every source byte went through the source's
    hash (a local raw file is read block by block, holes skipped, unless a checksum is
    to be verified).
    """
    head = source.read(formats.SNIFF_BYTES)
    if not head:
        raise ValidationError(f"{source.description} is empty")
    outer = formats.detect(head)
    compression = outer if outer in formats.COMPRESSIONS else None
    chunks = decoded(source, compression, head)
    inner_head, chunks = peek(chunks, formats.SNIFF_BYTES)
    inner = formats.detect(inner_head) if compression else outer
    if inner in formats.COMPRESSIONS:
        raise ValidationError(f"{source.description}: {inner} inside {outer} is not supported")
    kind = f"{inner}+{compression}" if compression else inner

    def report(phase: str) -> Callable[[int], None] | None:
        if progress is None:
            return None
        return lambda done: progress(phase, source.position, source.size)

    if inner == formats.RAW and compression is None and source.path and not request.sha256:
        size = source.size or 0
        if size > request.max_size:
            raise ValidationError(f"{source.description}: {size} bytes exceeds [images] max_size")
        same_fs = os.stat(source.path).st_dev == os.stat(ingest.op.path).st_dev
        ingest.from_file(
            source.path,
            size,
            clone=same_fs,
            progress=None if progress is None else lambda d: progress("import", d, size),
        )
        return kind, False
    if inner == formats.RAW:
        ingest.from_chunks(
            chunks, limit=request.max_size, what=source.description, progress=report("import")
        )
        return kind, True
    header = formats.parse_qcow2_header(inner_head, request.max_size)
    if compression is None and source.path is not None:
        qcow2_file = source.path
        # The checksum still has to see every byte of the file.
        for _ in chunks:
            if progress is not None:
                progress("checksum", source.position, source.size)
    else:
        qcow2_file = ingest.op.path / "image.qcow2"
        limit = header.container_limit
        _write_all(qcow2_file, chunks, report("download"), limit, source.description)
    size = qemuimg.parse_info(
        runner.run(qemuimg.info_argv(qcow2_file), timeout=120).stdout_text, source.description
    )
    if size > request.max_size:
        raise ValidationError(
            f"{source.description}: qcow2 virtual size {size} exceeds [images] max_size"
        )
    raw = ingest.op.path / "image.raw"
    if progress is not None:
        progress("qcow2 to raw", 0, None)
    runner.run(qemuimg.convert_argv(qcow2_file, raw), timeout=QEMU_IMG_TIMEOUT)
    actual = raw.stat().st_size
    if actual != size:
        raise ValidationError(
            f"{source.description}: qcow2 decoded to {actual} bytes, its header said {size}"
        )
    ingest.from_file(
        raw, size, progress=None if progress is None else lambda d: progress("import", d, size)
    )
    return kind, True


def _write_all(
    path: Path,
    chunks: Iterator[bytes],
    progress: Callable[[int], None] | None,
    limit: int,
    what: str,
) -> None:
    written = 0
    with open(path, "wb") as out:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise ValidationError(f"{what}: the qcow2 container is over {limit} bytes")
            out.write(chunk)
            if progress is not None:
                progress(written)


def _drain(source: Source) -> None:
    while source.read(1024 * 1024):
        pass
