"""What the ExtStorage verbs need from a storage backend, and nothing about how.

The file store (ganeti_ext.extstorage.filestore) is the first backend: blocks, origins
and volumes as files on XFS or btrfs, attached as loop devices. A Ceph RBD backend fits
the same shape: images and snapshots are RBD snapshots to clone from, `attach` returns a
`kvm:rbd:...` URI instead of (or beside) a device, `lock` is an RBD advisory lock.

Names reaching a backend were checked by the caller (layout.check_name); sizes are bytes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    size: int
    origin: str | None = None
    uuid: str | None = None
    cname: str | None = None


@dataclass(frozen=True)
class Volume:
    name: str
    size: int
    origin: str | None
    uuid: str | None
    cname: str | None
    metadata: str | None
    # Node name -> True for an exclusive open, False for a shared one (migration).
    opens: dict[str, bool] = field(default_factory=dict)
    created: str = ""


@dataclass(frozen=True)
class Origin:
    """An image or snapshot: something a volume can be created from."""

    name: str
    kind: str  # "image" or "snapshot"
    size: int
    ready: bool  # blocks hashed into the store (a snapshot just taken is not yet)
    created: str = ""
    source: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    """How a node reaches a volume: a block device, and/or a URI for qemu (userspace)."""

    device: str | None
    uri: str | None = None


class Backend(Protocol):
    def check(self) -> None:
        """Raise ValidationError when the backend cannot be used (names the reason)."""

    def lock(self, name: str) -> AbstractContextManager[None]:
        """Exclusive lock on one name, held across every node sharing the storage."""

    def volume(self, name: str) -> Volume | None: ...

    def origin(self, name: str) -> Origin | None: ...

    def create(self, spec: VolumeSpec) -> None:
        """Create a volume (a zero-copy clone of spec.origin when given); fails if it exists."""

    def remove(self, name: str) -> bool:
        """Remove a volume or snapshot; False when there was nothing to remove."""

    def grow(self, name: str, size: int) -> None: ...

    def snapshot(self, volume: str, snapshot: str) -> None:
        """Freeze the volume's current bytes as snapshot `snapshot` (usable as an origin)."""

    def attach(self, name: str) -> Attachment:
        """Make the volume (or a snapshot, read-only) usable on this node; idempotent."""

    def detach(self, name: str) -> None:
        """Undo attach on this node; idempotent, also for a name already removed."""

    def set_metadata(self, name: str, metadata: str) -> None: ...

    def set_open(self, name: str, node: str, exclusive: bool) -> None:
        """Record that `node` opened the volume; refuses what would break exclusivity."""

    def clear_open(self, name: str, node: str) -> None: ...


class OpenConflict(Exception):
    """Opening would break exclusivity; `holders` are the nodes in the way."""

    def __init__(self, holders: list[str]) -> None:
        super().__init__(", ".join(holders))
        self.holders = holders


def opened(opens: dict[str, bool], node: str, exclusive: bool) -> dict[str, bool]:
    """Who has the volume open after `node` opens it (Ganeti's open verb), or OpenConflict.

    Ganeti opens a volume exclusively on its primary node, and shared on both nodes
    during a live migration (after closing it on the target). So: an exclusive open
    needs no other node to hold it; a shared one needs no other node to hold it
    exclusively. The same node may reopen in either mode.
    """
    others = {other: excl for other, excl in opens.items() if other != node}
    holders = sorted(others) if exclusive else sorted(o for o, e in others.items() if e)
    if holders:
        raise OpenConflict(holders)
    return {**others, node: exclusive}
