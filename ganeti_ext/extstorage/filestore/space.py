"""`archipelago df`: the space the store really takes, from the file system's extent maps.

`du` adds up every file's allocated bytes, so a block shared by an image, its snapshot
and twenty volumes counts twenty-two times. Here every file's extents are read with
FIEMAP and the physical ranges merged: `used` is the union (what the store really
takes), `unique` per group is what only that group's files hold (what removing all of
them would give back, shared extents aside), `apparent` is du's sum.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext.extstorage.filestore.layout import DATA_FILE
from ganeti_ext.extstorage.filestore.reflink import extents

Range = tuple[int, int]  # [start, end) on the device


@dataclass
class Group:
    name: str
    files: int = 0
    logical: int = 0  # sizes as the files claim them (holes included)
    apparent: int = 0  # allocated bytes, added up file by file (du)
    ranges: list[Range] = field(default_factory=list)

    @property
    def used(self) -> int:
        return _total(_merged(self.ranges))


@dataclass
class SpaceReport:
    groups: list[Group]
    used: int  # union over the whole store
    apparent: int
    fs_size: int
    fs_free: int
    unique: dict[str, int]  # group -> bytes no other group's files hold

    @property
    def saved(self) -> int:
        return self.apparent - self.used


def report(store) -> SpaceReport:
    layout = store.layout
    groups = {
        "blocks": _group("blocks", _block_files(layout.blocks_dir)),
        "images": _group("images", _origin_files(store, "image")),
        "snapshots": _group("snapshots", _origin_files(store, "snapshot")),
        "volumes": _group(
            "volumes", (layout.volume_dir(n) / DATA_FILE for n in store.volume_names())
        ),
    }
    merged = {name: _merged(group.ranges) for name, group in groups.items()}
    everything = _merged(r for ranges in merged.values() for r in ranges)
    unique = {}
    for name, ranges in merged.items():
        others = _merged(r for other, rs in merged.items() if other != name for r in rs)
        unique[name] = _total(_subtract(ranges, others))
    info = os.statvfs(layout.root)
    return SpaceReport(
        groups=list(groups.values()),
        used=_total(everything),
        apparent=sum(group.apparent for group in groups.values()),
        fs_size=info.f_blocks * info.f_frsize,
        fs_free=info.f_bavail * info.f_frsize,
        unique=unique,
    )


def _group(name: str, files: Iterable[Path]) -> Group:
    group = Group(name)
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # removed while we looked
        try:
            group.files += 1
            group.logical += os.fstat(fd).st_size
            for extent in extents(fd):
                group.apparent += extent.length
                group.ranges.append((extent.physical, extent.physical + extent.length))
        finally:
            os.close(fd)
    return group


def _block_files(blocks_dir: Path) -> Iterator[Path]:
    for directory in sorted(blocks_dir.iterdir()):
        if directory.is_dir():
            yield from sorted(directory.iterdir())


def _origin_files(store, kind: str) -> Iterator[Path]:
    for name in store.origin_names():
        found = store.map(name)
        if found is not None and found.kind == kind:
            yield store.origin_data(name)


def _merged(ranges: Iterable[Range]) -> list[Range]:
    result: list[Range] = []
    for start, end in sorted(ranges):
        if result and start <= result[-1][1]:
            if end > result[-1][1]:
                result[-1] = (result[-1][0], end)
        else:
            result.append((start, end))
    return result


def _subtract(ranges: list[Range], others: list[Range]) -> list[Range]:
    """Parts of merged `ranges` not covered by merged `others`."""
    result = []
    index = 0
    for start, end in ranges:
        while index < len(others) and others[index][1] <= start:
            index += 1
        cursor = start
        probe = index
        while probe < len(others) and others[probe][0] < end:
            other_start, other_end = others[probe]
            if other_start > cursor:
                result.append((cursor, other_start))
            cursor = max(cursor, other_end)
            probe += 1
        if cursor < end:
            result.append((cursor, end))
    return result


def _total(ranges: Iterable[Range]) -> int:
    return sum(end - start for start, end in ranges)
