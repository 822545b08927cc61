"""What an image file is, from its first bytes, and whether a qcow2 header is safe (pure).

Detection goes by content, never by file name: a file called .qcow2 that holds xz data
is xz. The qcow2 checks run before qemu-img ever opens the file, so an image that would
make it read host files (a backing file, an external data file) or lies about its size
is refused with the reason.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ganeti_ext.errors import ValidationError

XZ, ZSTD, GZIP, QCOW2, RAW = "xz", "zstd", "gzip", "qcow2", "raw"
COMPRESSIONS = (XZ, ZSTD, GZIP)
SNIFF_BYTES = 512  # enough for every magic and the whole qcow2 v2/v3 header

_MAGICS = (
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
    (b"\x1f\x8b", GZIP),
    (b"QFI\xfb", QCOW2),
)
# Other formats an admin might hand us by mistake: refuse by name rather than import
# their container bytes as if they were a disk.
_FOREIGN = (
    (b"KDMV", "VMDK"),
    (b"conectix", "VHD"),
    (b"vhdxfile", "VHDX"),
    (b"<<< Oracle VM VirtualBox Disk Image >>>", "VDI"),
    (b"BZh", "bzip2"),
    (b"PK\x03\x04", "zip"),
)

_QCOW2_HEADER = struct.Struct(">4sIQIIQIIQQIIQ")  # the version 2 header, 72 bytes
_QCOW2_V3_EXTRA = struct.Struct(">QQQII")  # features, refcount order, header length
QCOW2_INCOMPAT_DIRTY = 1 << 0
QCOW2_INCOMPAT_CORRUPT = 1 << 1
QCOW2_INCOMPAT_DATA_FILE = 1 << 2
QCOW2_INCOMPAT_COMPRESSION = 1 << 3
QCOW2_INCOMPAT_EXTL2 = 1 << 4
_QCOW2_KNOWN_INCOMPAT = (
    QCOW2_INCOMPAT_DIRTY
    | QCOW2_INCOMPAT_CORRUPT
    | QCOW2_INCOMPAT_DATA_FILE
    | QCOW2_INCOMPAT_COMPRESSION
    | QCOW2_INCOMPAT_EXTL2
)


def detect(head: bytes) -> str:
    """The format of data starting with `head`: one of xz, zstd, gzip, qcow2, raw."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    for magic, name in _FOREIGN:
        if head.startswith(magic):
            raise ValidationError(
                f"the data is {name}, not a raw disk or qcow2 (convert it with qemu-img first)"
            )
    return RAW


QCOW2_OVERHEAD = 64 * 1024 * 1024  # a qcow2 container's allowance beyond its virtual size


@dataclass(frozen=True)
class Qcow2Header:
    version: int
    size: int
    cluster_bits: int
    l1_size: int
    incompatible: int

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def container_limit(self) -> int:
        """The most bytes a genuine container of this virtual size takes: its metadata is
        a small part of it, so a far bigger file is a bomb meant to fill a disk."""
        return self.size + self.size // 64 + QCOW2_OVERHEAD


def parse_qcow2_header(head: bytes, limit: int) -> Qcow2Header:
    """The qcow2 header's facts; a ValidationError for anything unsafe or inconsistent.

    `limit` is the largest virtual size accepted (an image claiming more is refused
    before anything is decoded).
    """
    if len(head) < _QCOW2_HEADER.size:
        raise ValidationError("qcow2 image: header truncated")
    (
        magic,
        version,
        backing_offset,
        backing_size,
        cluster_bits,
        size,
        crypt_method,
        l1_size,
        _l1_offset,
        _refcount_offset,
        _refcount_clusters,
        _snapshots,
        _snapshots_offset,
    ) = _QCOW2_HEADER.unpack_from(head)
    if magic != b"QFI\xfb":
        raise ValidationError("qcow2 image: bad magic")
    if version not in (2, 3):
        raise ValidationError(f"qcow2 image: version {version} is not supported (2 or 3)")
    if backing_offset or backing_size:
        raise ValidationError(
            "qcow2 image has a backing file: refused, since decoding it would read a file "
            "of this host (flatten it with `qemu-img convert` first)"
        )
    if crypt_method:
        raise ValidationError("qcow2 image is encrypted: refused")
    if not 9 <= cluster_bits <= 21:
        raise ValidationError(f"qcow2 image: cluster_bits {cluster_bits} out of range 9-21")
    incompatible = 0
    if version == 3:
        if len(head) < _QCOW2_HEADER.size + _QCOW2_V3_EXTRA.size:
            raise ValidationError("qcow2 image: version 3 header truncated")
        incompatible = _QCOW2_V3_EXTRA.unpack_from(head, _QCOW2_HEADER.size)[0]
        if incompatible & QCOW2_INCOMPAT_DATA_FILE:
            raise ValidationError(
                "qcow2 image uses an external data file: refused, since decoding it would "
                "read a file of this host"
            )
        if incompatible & QCOW2_INCOMPAT_CORRUPT:
            raise ValidationError("qcow2 image is marked corrupt")
        if incompatible & QCOW2_INCOMPAT_DIRTY:
            raise ValidationError(
                "qcow2 image is marked dirty (not closed cleanly): check it with "
                "`qemu-img check -r all` first"
            )
        unknown = incompatible & ~_QCOW2_KNOWN_INCOMPAT
        if unknown:
            raise ValidationError(f"qcow2 image: unknown incompatible features {unknown:#x}")
    if size == 0:
        raise ValidationError("qcow2 image: virtual size 0")
    if size > limit:
        raise ValidationError(
            f"qcow2 image claims a virtual size of {size} bytes, more than the {limit} "
            "allowed ([images] max_size)"
        )
    cluster = 1 << cluster_bits
    # Each L1 entry maps one L2 table, which maps cluster/8 clusters (cluster/16 with
    # extended L2 entries); a header whose L1 table cannot cover its size lies.
    entries_per_l2 = cluster // (16 if incompatible & QCOW2_INCOMPAT_EXTL2 else 8)
    covered = l1_size * entries_per_l2 * cluster
    if covered < size:
        raise ValidationError(
            f"qcow2 image header is inconsistent: it claims {size} bytes but its L1 table "
            f"covers only {covered}"
        )
    return Qcow2Header(version, size, cluster_bits, l1_size, incompatible)
