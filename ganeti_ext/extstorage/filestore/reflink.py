"""The Linux ioctls that make the file store zero-copy: FICLONE, FICLONERANGE, FIEMAP.

Struct layouts are from linux/fs.h and linux/fiemap.h. Packing and unpacking are pure
functions (tested without a file system); the three calls below them are the only
places that touch the kernel.
"""

from __future__ import annotations

import errno
import fcntl
import struct
from dataclasses import dataclass

FICLONE = 0x40049409  # _IOW(0x94, 9, int)
FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range)
FS_IOC_FIEMAP = 0xC020660B  # _IOWR('f', 11, struct fiemap)

_CLONE_RANGE = struct.Struct("=qQQQ")  # src_fd, src_offset, src_length, dest_offset
_FIEMAP_HEAD = struct.Struct("=QQIIII")  # start, length, flags, mapped, count, reserved
_FIEMAP_EXTENT = struct.Struct("=QQQ16xI12x")  # logical, physical, length, flags
FIEMAP_FLAG_SYNC = 0x1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_UNWRITTEN = 0x800
FIEMAP_EXTENT_SHARED = 0x2000
_EXTENTS_PER_CALL = 512

# What the kernel answers when the file system cannot share extents between files.
NO_REFLINK_ERRNOS = frozenset(
    {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS}
)


@dataclass(frozen=True)
class Extent:
    logical: int
    physical: int
    length: int
    flags: int

    @property
    def shared(self) -> bool:
        return bool(self.flags & FIEMAP_EXTENT_SHARED)


def pack_clone_range(src_fd: int, src_offset: int, length: int, dest_offset: int) -> bytes:
    return _CLONE_RANGE.pack(src_fd, src_offset, length, dest_offset)


def pack_fiemap_request(start: int, length: int, count: int) -> bytearray:
    buffer = bytearray(_FIEMAP_HEAD.size + count * _FIEMAP_EXTENT.size)
    _FIEMAP_HEAD.pack_into(buffer, 0, start, length, FIEMAP_FLAG_SYNC, 0, count, 0)
    return buffer


def unpack_fiemap_reply(buffer: bytes | bytearray) -> list[Extent]:
    mapped = _FIEMAP_HEAD.unpack_from(buffer, 0)[3]
    extents = []
    for index in range(mapped):
        offset = _FIEMAP_HEAD.size + index * _FIEMAP_EXTENT.size
        extents.append(Extent(*_FIEMAP_EXTENT.unpack_from(buffer, offset)))
    return extents


def clone_file(src_fd: int, dest_fd: int) -> None:
    """Make dest share all of src's extents (dest becomes an exact copy, no data copied)."""
    fcntl.ioctl(dest_fd, FICLONE, src_fd)


def clone_range(src_fd: int, src_offset: int, length: int, dest_fd: int, dest_offset: int) -> None:
    """Share `length` bytes of src at src_offset into dest at dest_offset.

    Offsets and length must be multiples of the file system block size, except a
    length that reaches the end of src.
    """
    fcntl.ioctl(dest_fd, FICLONERANGE, pack_clone_range(src_fd, src_offset, length, dest_offset))


def extents(fd: int, start: int = 0, length: int | None = None) -> list[Extent]:
    """The file's data extents overlapping [start, start + length) (holes are absent)."""
    end = (1 << 64) - 1 if length is None else start + length
    found: list[Extent] = []
    position = start
    while position < end:
        buffer = pack_fiemap_request(position, end - position, _EXTENTS_PER_CALL)
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buffer)
        batch = unpack_fiemap_reply(buffer)
        if not batch:
            break
        found.extend(batch)
        last = batch[-1]
        if last.flags & FIEMAP_EXTENT_LAST:
            break
        position = last.logical + last.length
    return found
