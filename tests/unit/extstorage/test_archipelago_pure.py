"""Pure helpers of the file store: ioctl structs, extent arithmetic, zero blocks, progress."""

import struct

from ganeti_ext import termprogress
from ganeti_ext.extstorage.filestore import blocks, reflink, space


def test_clone_range_struct_is_the_kernels():
    packed = reflink.pack_clone_range(7, 4096, 8192, 12288)
    assert packed == struct.pack("=qQQQ", 7, 4096, 8192, 12288) and len(packed) == 32


def test_fiemap_reply_is_read_extent_by_extent():
    buffer = reflink.pack_fiemap_request(0, 1 << 30, 2)
    assert len(buffer) == 32 + 2 * 56
    struct.pack_into("=I", buffer, 20, 2)  # fm_mapped_extents
    struct.pack_into("=QQQ16xI12x", buffer, 32, 0, 1 << 20, 4096, reflink.FIEMAP_EXTENT_SHARED)
    struct.pack_into("=QQQ16xI12x", buffer, 88, 8192, 2 << 20, 4096, reflink.FIEMAP_EXTENT_LAST)
    first, last = reflink.unpack_fiemap_reply(buffer)
    assert (first.logical, first.physical, first.length, first.shared) == (0, 1 << 20, 4096, True)
    assert last.logical == 8192 and not last.shared


def test_ranges_merge_and_subtract():
    merged = space._merged([(10, 20), (0, 5), (15, 30), (30, 31), (40, 50)])
    assert merged == [(0, 5), (10, 31), (40, 50)]
    assert space._subtract(merged, [(12, 14), (29, 45)]) == [(0, 5), (10, 12), (14, 29), (45, 50)]
    assert space._total(merged) == 36


def test_zero_blocks_are_recognised_whatever_their_length():
    assert blocks.is_zero(bytes(4 << 20)) and blocks.is_zero(bytes(100))
    data = bytearray(4 << 20)
    data[-1] = 1
    assert not blocks.is_zero(data)


def test_a_short_last_block_is_named_as_if_zero_padded():
    tail = b"abc"
    assert blocks.block_digest(blocks._padded(tail, 4096)) == blocks.block_digest(
        tail + bytes(4093)
    )


def test_progress_line_says_bytes_rate_and_time_left():
    text = termprogress.line("import", 1 << 30, 2 << 30, 4.0)
    assert text == "import: 1.0 GiB of 2.0 GiB (50%), 256.0 MiB/s, 4 s left"
    assert termprogress.line("download", 512, None, 0.0) == "download: 512 B, 0 B/s"
