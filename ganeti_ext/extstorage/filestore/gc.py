"""Garbage collection: remove every block that no image or snapshot map names.

Safe beside imports and snapshots: an operation pins each block it will reference by
a hard link in its own work directory, and gives those blocks their store names and
publishes its map under the store lock held shared; gc marks and sweeps under the same
lock held exclusively. So gc either sees the new map, or removes a name that the
commit then puts back from the pinned link. Volumes never depend on block files:
their extents are reference-counted by the file system.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.extstorage.filestore import work
from ganeti_ext.extstorage.filestore.digest import DigestBusy, digest_snapshot, pending_snapshots
from ganeti_ext.extstorage.filestore.layout import is_block_name

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    dry_run: bool
    digested: list[str] = field(default_factory=list)
    debris: list[str] = field(default_factory=list)
    blocks_removed: int = 0
    bytes_removed: int = 0  # allocated bytes of the removed block files
    blocks_kept: int = 0
    freed: int = 0  # what the file system reports as freed (shared extents may stay)
    seconds: float = 0.0


def collect(store, *, dry_run: bool = False, digest: bool = True) -> GcReport:
    started = time.monotonic()
    report = GcReport(dry_run)
    tmp = store.layout.tmp_dir
    if dry_run:
        report.debris = [entry.name for entry in work.abandoned(tmp)]
    else:
        report.debris = [entry.name for entry in work.reap(tmp)]
        if digest:
            for name in pending_snapshots(store):
                try:
                    if digest_snapshot(store, name):
                        report.digested.append(name)
                except DigestBusy:
                    log.info("snapshot %s is being digested by another process", name)
                except GanetiExtError as err:  # removed meanwhile, store full...: gc goes on
                    log.warning("snapshot %s not digested: %s", name, err)
    before = _free_bytes(store)
    with store.store_lock(shared=False):
        referenced = _referenced(store)
        for directory in sorted(store.layout.blocks_dir.iterdir()):
            if not directory.is_dir():
                continue
            for entry in os.scandir(directory):
                if is_block_name(entry.name) and entry.name in referenced:
                    report.blocks_kept += 1
                    continue
                if not is_block_name(entry.name):
                    continue  # not ours to judge: fsck reports it
                report.blocks_removed += 1
                report.bytes_removed += entry.stat(follow_symlinks=False).st_blocks * 512
                if not dry_run:
                    os.unlink(entry.path)
    report.freed = max(0, _free_bytes(store) - before)
    report.seconds = time.monotonic() - started
    log.info(
        "gc%s: %d blocks removed (%d bytes), %d kept, %d bytes freed",
        " (dry run)" if dry_run else "",
        report.blocks_removed,
        report.bytes_removed,
        report.blocks_kept,
        report.freed,
    )
    return report


def _referenced(store) -> set[str]:
    referenced: set[str] = set()
    for name in store.origin_names():
        try:
            found = store.map(name)
        except ValidationError as err:
            raise ValidationError(
                f"gc stopped before removing anything: {err}; run `archipelago fsck`"
            ) from None
        if found is not None:
            referenced |= found.referenced()
    return referenced


def _free_bytes(store) -> int:
    info = os.statvfs(store.layout.root)
    return info.f_bavail * info.f_frsize
