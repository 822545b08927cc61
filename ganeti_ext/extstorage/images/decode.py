"""Streaming decompression of xz, zstd and gzip, bounded in memory, one chunk at a time.

Each decoder yields decoded chunks of at most CHUNK bytes however much a few input
bytes expand to (a "bomb" costs time, never memory; the importer stops it at the size
limit). Concatenated streams (several gzip members, xz streams or zstd frames) decode as
one, as their command-line tools do. A stream cut short or corrupt is an error that
names the format and how far it got.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from typing import Protocol

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.images.formats import GZIP, XZ, ZSTD

CHUNK = 1024 * 1024
READ_SIZE = 1024 * 1024


class Readable(Protocol):
    description: str
    position: int

    def read(self, size: int) -> bytes: ...


def decoded(source: Readable, compression: str | None, first: bytes = b"") -> Iterator[bytes]:
    """The decoded bytes of `source` (after `first`, bytes already read from it)."""
    if compression is None:
        yield from _plain(source, first)
    elif compression == GZIP:
        yield from _zlib_like(source, first, GZIP)
    elif compression == XZ:
        yield from _zlib_like(source, first, XZ)
    elif compression == ZSTD:
        yield from _zstd(source, first)
    else:
        raise ValueError(f"unknown compression {compression!r}")


def _plain(source: Readable, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while data := source.read(READ_SIZE):
        yield data


def _new_decoder(compression: str):
    if compression == GZIP:
        return zlib.decompressobj(wbits=31)
    return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)


def _zlib_like(source: Readable, first: bytes, compression: str) -> Iterator[bytes]:
    decoder = _new_decoder(compression)
    pending = first or source.read(READ_SIZE)
    started = False  # inside a stream whose end we have not seen
    try:
        while True:
            if not pending:
                if started:
                    raise ValidationError(
                        f"{compression} data of {source.description} is truncated "
                        f"(ended at byte {source.position})"
                    )
                return
            if compression == XZ and not started and pending[:1] == b"\0":
                pending = pending.lstrip(b"\0")  # stream padding between xz streams
                if not pending:
                    pending = source.read(READ_SIZE)
                continue
            started = True
            while pending:
                if compression == GZIP:
                    out = decoder.decompress(pending, CHUNK)
                    pending = decoder.unconsumed_tail
                else:
                    out = decoder.decompress(pending, CHUNK)
                    pending = b""
                if out:
                    yield out
                if decoder.eof:
                    # Past the end, the rest is unused_data (zlib repeats it in the tail).
                    pending = decoder.unused_data
                    decoder = _new_decoder(compression)
                    started = False
                    break
            # lzma keeps input internally: drain it before feeding more.
            while compression == XZ and started and not decoder.needs_input and not decoder.eof:
                out = decoder.decompress(b"", CHUNK)
                if out:
                    yield out
                if decoder.eof:
                    pending = decoder.unused_data
                    decoder = _new_decoder(compression)
                    started = False
            if not pending:
                pending = source.read(READ_SIZE)
    except (zlib.error, lzma.LZMAError) as err:
        raise ValidationError(
            f"{compression} data of {source.description} is corrupt near byte "
            f"{source.position}: {err}"
        ) from None


# One zstd input byte can stand for up to 32 Ki output bytes (an RLE block), and its
# decoder object has no output limit: feeding 1 KiB at a time bounds each answer to 32 MiB.
ZSTD_FEED = 1024


def _zstd(source: Readable, first: bytes) -> Iterator[bytes]:
    import zstandard  # python3-zstandard; only needed for zstd images

    decoder = zstandard.ZstdDecompressor().decompressobj()
    pending = first or source.read(READ_SIZE)
    started = False
    try:
        while pending:
            started = True
            for start in range(0, len(pending), ZSTD_FEED):
                out = decoder.decompress(pending[start : start + ZSTD_FEED])
                if out:
                    yield out
                if decoder.eof:
                    pending = decoder.unused_data + pending[start + ZSTD_FEED :]
                    decoder = zstandard.ZstdDecompressor().decompressobj()
                    started = False
                    break
            else:
                pending = b""
            if not pending:
                pending = source.read(READ_SIZE)
    except zstandard.ZstdError as err:
        raise ValidationError(
            f"zstd data of {source.description} is corrupt near byte {source.position}: {err}"
        ) from None
    if started:
        raise ValidationError(
            f"zstd data of {source.description} is truncated (ended at byte {source.position})"
        )


def peek(chunks: Iterator[bytes], count: int) -> tuple[bytes, Iterator[bytes]]:
    """The first `count` bytes of the stream, and the whole stream (those included)."""
    held: list[bytes] = []
    have = 0
    for chunk in chunks:
        held.append(chunk)
        have += len(chunk)
        if have >= count:
            break
    head = b"".join(held)

    def again() -> Iterator[bytes]:
        if head:
            yield head
        yield from chunks

    return head[:count], again()
