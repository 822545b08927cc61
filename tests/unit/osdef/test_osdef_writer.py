"""The sparse writer on a regular file: zero runs become holes, old bytes never survive."""

from __future__ import annotations

import os

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.writer import CHUNK, SparseWriter


def test_unaligned_writes_zero_only_whole_aligned_chunks(tmp_path):
    disk = tmp_path / "disk"
    disk.write_bytes(b"\xff" * (16 * CHUNK))  # old contents that must all be replaced
    data = os.urandom(1000) + bytes(5 * CHUNK) + os.urandom(777) + bytes(3 * CHUNK + 5)
    fd = os.open(disk, os.O_RDWR)
    try:
        writer = SparseWriter(fd, "disk")
        for start in range(0, len(data), 12345):  # chunks that never line up
            writer.write(data[start : start + 12345])
        writer.finish()
    finally:
        os.close(fd)
    written = disk.read_bytes()
    assert written[: len(data)] == data
    assert disk.stat().st_blocks * 512 < 16 * CHUNK, "zero runs are holes"


def test_more_than_the_disk_is_refused(tmp_path):
    disk = tmp_path / "disk"
    disk.write_bytes(bytes(CHUNK))
    fd = os.open(disk, os.O_RDWR)
    try:
        writer = SparseWriter(fd, "disk of vm1")
        with pytest.raises(ValidationError, match="disk of vm1: more than the disk's 65536 bytes"):
            writer.write(bytes(CHUNK + 1))
    finally:
        os.close(fd)
