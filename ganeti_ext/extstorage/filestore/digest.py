"""Hashing a snapshot's blocks into the store after the fact.

Taking a snapshot only freezes the volume's bytes (one reflink, milliseconds), so Ganeti
never waits for hashing. Digesting then names its blocks, shares identical blocks with
every image and snapshot, and rebuilds the frozen data file from those blocks, so
identical bytes take their space once. Until then the snapshot is already a complete
origin. A digest that is killed leaves the snapshot as it was; any later digest
(`archipelago snapshot digest`, or gc) starts it again.
"""

from __future__ import annotations

import logging
import os

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore.ingest import Ingest, Progress
from ganeti_ext.extstorage.filestore.layout import DATA_FILE, MAP_FILE
from ganeti_ext.fsutil import file_lock, sync_directory

log = logging.getLogger(__name__)


class DigestBusy(ValidationError):
    """Another process is digesting this snapshot right now."""


def digest_snapshot(store, name: str, *, progress: Progress | None = None) -> bool:
    """Digest snapshot `name`; False when it was already digested (or vanished)."""
    frozen = store.map(name)
    if frozen is None or frozen.kind != "snapshot":
        raise ValidationError(f"no snapshot named {name} in the store")
    if frozen.digested:
        return False
    busy_lock = store.layout.locks_dir / "digest" / name
    with file_lock(
        busy_lock, timeout=0, busy=f"snapshot {name} is being digested", error=DigestBusy
    ):
        data = store.origin_data(name)
        try:
            # Held open to the end: while it is, its inode number cannot be reused, so the
            # same identity at commit time is the same file (not a snapshot re-created).
            held = os.open(data, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            return _digest(store, name, frozen, data, _identity(held), progress)
        finally:
            os.close(held)


def _digest(store, name: str, frozen, data, identity, progress: Progress | None) -> bool:
    with store.operation("digest", f"snapshot {name}") as op:
        ingest = Ingest(store, op)
        ingest.from_file(data, frozen.size, progress=progress)
        staged, digested = ingest.stage("snapshot", name, frozen.source, frozen.created)
        with store.lock(name), store.store_lock(shared=True):
            current = store.map(name)
            if current is None or current.digested or _identity(data) != identity:
                return False  # removed, digested or replaced meanwhile
            ingest.collector.commit()
            origin = store.layout.origin_dir(name)
            # Data first: a crash between the two leaves the same bytes, undigested.
            os.rename(staged / DATA_FILE, origin / DATA_FILE)
            os.rename(staged / MAP_FILE, origin / MAP_FILE)
            sync_directory(origin)
    log.info(
        "snapshot %s digested: %d blocks, %d new",
        name,
        sum(1 for block in digested.blocks or () if block),
        ingest.collector.new_blocks,
    )
    return True


def pending_snapshots(store) -> list[str]:
    pending = []
    for name in store.origin_names():
        found = store.map(name)
        if found is not None and found.kind == "snapshot" and not found.digested:
            pending.append(name)
    return pending


def _identity(file) -> tuple[int, int] | None:
    """(device, inode) of a path or an open file descriptor; None if the path is gone."""
    try:
        info = os.stat(file)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino
