"""What the first bytes of a disk image promise (pure): how big a disk it needs, whether
it is the format it claims, and the partition table snf-image puts around an extdump.

Only container headers are read here (MBR, GPT header, ext superblock), never a file
system's contents; they give the size check that runs before the first byte is written.
"""

from __future__ import annotations

import secrets
import struct

from ganeti_ext.errors import ValidationError

SECTOR = 512
MBR_SIGNATURE = b"\x55\xaa"
GPT_SIGNATURE = b"EFI PART"
EXT_MAGIC = 0xEF53
PARTITION_START = 2048  # sectors: the first partition at 1 MiB
HEAD_BYTES = 64 * 1024  # enough for the MBR, the GPT header and an ext superblock


def has_boot_signature(head: bytes) -> bool:
    return len(head) >= SECTOR and head[510:512] == MBR_SIGNATURE


def required_size(head: bytes) -> int:
    """Bytes a disk needs for the partitions the MBR (or GPT header) of `head` describes."""
    if not has_boot_signature(head):
        return 0
    end = 0
    protective = False
    for index in range(4):
        entry = head[446 + 16 * index : 446 + 16 * (index + 1)]
        kind = entry[4]
        start, count = struct.unpack_from("<II", entry, 8)
        if kind == 0xEE:
            protective = True
        if kind and count:
            end = max(end, (start + count) * SECTOR)
    if protective and head[SECTOR : SECTOR + 8] == GPT_SIGNATURE:
        (last_usable,) = struct.unpack_from("<Q", head, SECTOR + 48)
        # The backup header goes at the disk's end; it may be moved (FixPartitionTable),
        # but the partitions must fit: last usable LBA + the 33 sectors of the backup.
        end = (last_usable + 34) * SECTOR
    return end


def ext_size(head: bytes) -> int:
    """The size of the ext2/3/4 file system starting at `head`, or a ValidationError."""
    if len(head) < 2048:
        raise ValidationError("extdump image: shorter than an ext superblock")
    (magic,) = struct.unpack_from("<H", head, 1024 + 56)
    if magic != EXT_MAGIC:
        raise ValidationError("the data is not an ext2/3/4 file system (no ext superblock)")
    (blocks_lo,) = struct.unpack_from("<I", head, 1024 + 4)
    (log_block,) = struct.unpack_from("<I", head, 1024 + 24)
    (incompat,) = struct.unpack_from("<I", head, 1024 + 96)
    if log_block > 6:
        raise ValidationError("extdump image: the superblock's block size is out of range")
    blocks = blocks_lo
    if incompat & 0x80:  # 64bit
        (blocks_hi,) = struct.unpack_from("<I", head, 1024 + 0x150)
        blocks |= blocks_hi << 32
    return blocks * (1024 << log_block)


def extdump_prefix(fs_bytes: int) -> bytes:
    """The first MiB of a disk holding an extdump: an MBR with one Linux partition at
    sector 2048 exactly as big as the file system, then zeros."""
    sectors = (fs_bytes + SECTOR - 1) // SECTOR
    if PARTITION_START + sectors >= 1 << 32:
        raise ValidationError("extdump image: too big for an msdos partition table")
    mbr = bytearray(PARTITION_START * SECTOR)
    mbr[440:444] = secrets.token_bytes(4)  # disk identifier
    entry = struct.pack(
        "<B3sB3sII", 0, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", PARTITION_START, sectors
    )
    mbr[446:462] = entry
    mbr[510:512] = MBR_SIGNATURE
    return bytes(mbr)
