"""`export` and `import`: an instance's disk as a raw stream, for gnt-backup.

Ganeti pipes `export`'s standard output to the target node (compressing it on the way)
and feeds it to `import`'s standard input there. The stream is the disk's bytes from the
first to the last; the import writes it sparse (zero runs become holes) and refuses a
stream longer than the disk.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import BinaryIO

from ganeti_ext.environ import osapi
from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.writer import SparseWriter, device_size, open_disk

log = logging.getLogger(__name__)

READ_SIZE = 4 * 1024 * 1024


def _disk(request: osapi.TransferRequest) -> str:
    if not request.disk_path:
        raise ValidationError(
            f"instance {request.instance.name}: disk {request.disk_index} has no local path "
            "(a userspace-only disk cannot be exported or imported by snf-image)"
        )
    return request.disk_path


def export_disk(request: osapi.TransferRequest, out: BinaryIO | None = None) -> int:
    """Copy the disk to `out` (standard output); returns the bytes sent."""
    out = out or sys.stdout.buffer
    path = _disk(request)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = device_size(fd)
        sent = 0
        while sent < size:
            data = os.pread(fd, min(READ_SIZE, size - sent), sent)
            if not data:
                raise ValidationError(f"{path}: ended after {sent} of {size} bytes")
            out.write(data)
            sent += len(data)
        out.flush()
    finally:
        os.close(fd)
    log.info("exported disk %d of %s: %d bytes", request.disk_index, request.instance.name, sent)
    return sent


def import_disk(request: osapi.TransferRequest, source: BinaryIO | None = None) -> int:
    """Write standard input onto the disk, sparse; returns the bytes received."""
    source = source or sys.stdin.buffer
    path = _disk(request)
    fd = open_disk(path)
    try:
        writer = SparseWriter(fd, f"instance {request.instance.name} disk {request.disk_index}")
        while data := source.read(READ_SIZE):
            writer.write(data)
        writer.finish()
    finally:
        os.close(fd)
    log.info(
        "imported disk %d of %s: %d bytes (%d written, the rest zeros)",
        request.disk_index,
        request.instance.name,
        writer.position,
        writer.written,
    )
    return writer.position
