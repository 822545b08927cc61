"""Streaming decompression: concatenated streams, truncation, corruption, bounded chunks."""

import gzip
import io
import lzma
import os

import pytest
import zstandard

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.images.decode import CHUNK, decoded

DATA = os.urandom(300_000) + bytes(5_000_000) + b"tail"


class Stream:
    def __init__(self, data: bytes) -> None:
        self.data = io.BytesIO(data)
        self.description = "test.img"
        self.position = 0

    def read(self, size: int) -> bytes:
        chunk = self.data.read(size)
        self.position += len(chunk)
        return chunk


COMPRESS = {
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_concatenated_streams_decode_as_one(name):
    packed = COMPRESS[name](DATA) + COMPRESS[name](b"more")
    chunks = list(decoded(Stream(packed), name))
    assert b"".join(chunks) == DATA + b"more"
    assert max(len(chunk) for chunk in chunks) <= 32 * CHUNK


@pytest.mark.parametrize("name", sorted(COMPRESS))
@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_cut_stream_is_truncated_not_short(name, cut):
    packed = COMPRESS[name](DATA)
    with pytest.raises(ValidationError, match=rf"{name} data of test.img is truncated"):
        b"".join(decoded(Stream(packed[: int(len(packed) * cut)]), name))


@pytest.mark.parametrize("name", sorted(COMPRESS))
def test_corrupt_data_is_named(name):
    packed = bytearray(COMPRESS[name](DATA))
    packed[len(packed) // 2] ^= 0xFF
    packed[-10] ^= 0xFF  # and the trailing check
    with pytest.raises(ValidationError, match=rf"{name} data of test.img is (corrupt|truncated)"):
        b"".join(decoded(Stream(bytes(packed)), name))


def test_a_bomb_comes_out_in_bounded_chunks():
    bomb = lzma.compress(bytes(200 * CHUNK))
    assert len(bomb) < 100_000
    sizes = [len(chunk) for chunk in decoded(Stream(bomb), "xz")]
    assert sum(sizes) == 200 * CHUNK and max(sizes) <= CHUNK


def test_xz_stream_padding_between_streams_is_skipped():
    packed = lzma.compress(b"a") + bytes(8) + lzma.compress(b"b")
    assert b"".join(decoded(Stream(packed), "xz")) == b"ab"


def test_plain_data_passes_through_with_its_first_bytes():
    stream = Stream(DATA[10:])
    assert b"".join(decoded(stream, None, DATA[:10])) == DATA
