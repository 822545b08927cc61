"""The on-disk layout of an archipelago store and the file operations on it.

    <store>/volumes/<name>       sparse file holding the volume's bytes
    <store>/snapshots/<name>     frozen reflink copy of a volume (Ganeti names it <vol>.snap)
    <store>/meta/<name>.json     size, uuid, cname, Ganeti metadata, open state

The store lives on storage shared by all nodes. It must already exist: creating it here
would, on a node where the share is not mounted, silently put volumes on the local disk.
Later, volumes become maps of content-addressed blocks; the names above stay the API.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from ganeti_ext.errors import ValidationError
from ganeti_ext.fsutil import exclusive_lock

MIB = 1024 * 1024
FICLONE = 0x40049409  # _IOW(0x94, 9, int), from linux/fs.h
_NO_REFLINK = (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS)


class VolumeStore:
    """File-level operations on one store directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.volumes_dir = self.root / "volumes"
        self.snapshots_dir = self.root / "snapshots"
        self.meta_dir = self.root / "meta"

    def ensure_layout(self) -> None:
        if not self.root.is_dir():
            raise ValidationError(
                f"store directory {self.root} does not exist "
                "(is the shared storage mounted? see [store] path in archipelago.conf)"
            )
        for directory in (self.volumes_dir, self.snapshots_dir, self.meta_dir):
            directory.mkdir(mode=0o750, exist_ok=True)

    def volume_path(self, name: str) -> Path:
        return self.volumes_dir / name

    def snapshot_path(self, name: str) -> Path:
        return self.snapshots_dir / name

    def meta_path(self, name: str) -> Path:
        return self.meta_dir / f"{name}.json"

    def locate(self, name: str) -> Path | None:
        """The file behind volume or snapshot `name`, or None if neither exists."""
        for path in (self.volume_path(name), self.snapshot_path(name)):
            if path.exists():
                return path
        return None

    def is_snapshot(self, path: Path) -> bool:
        return path.parent == self.snapshots_dir

    def create_sparse(self, path: Path, size_bytes: int) -> None:
        """Create a new sparse file of `size_bytes`; fails if it exists."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size_bytes)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        os.close(fd)

    def read_meta(self, name: str) -> dict[str, Any]:
        try:
            with open(self.meta_path(name), encoding="utf-8") as stream:
                meta = json.load(stream)
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ValidationError(f"{self.meta_path(name)} is not valid JSON") from None
        return meta if isinstance(meta, dict) else {}

    def write_meta(self, name: str, meta: dict[str, Any]) -> None:
        """Replace the metadata file atomically (other nodes may read it at any time)."""
        target = self.meta_path(name)
        temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(temp, "w", encoding="utf-8") as stream:
            json.dump(meta, stream, indent=1, sort_keys=True)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)

    def update_meta(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        meta = self.read_meta(name)
        meta.update(changes)
        self.write_meta(name, meta)
        return meta

    def remove(self, name: str, path: Path) -> bool:
        """Delete a volume/snapshot file and its metadata; False if it was already gone."""
        existed = True
        try:
            path.unlink()
        except FileNotFoundError:
            existed = False
        self.meta_path(name).unlink(missing_ok=True)
        return existed


def reflink_copy(source: Path, target: Path) -> None:
    """Make `target` a copy-on-write clone of `source` (FICLONE); `target` must not exist.

    Raises ValidationError when the file system cannot share extents (ext4, tmpfs, or
    two different file systems).
    """
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.ioctl(fd, FICLONE, src.fileno())
            os.fsync(fd)
        except OSError as err:
            os.close(fd)
            target.unlink(missing_ok=True)
            if err.errno in _NO_REFLINK:
                raise ValidationError(
                    f"cannot snapshot {source}: its file system does not support reflinks "
                    f"({err.strerror}); put the store on XFS (reflink=1) or btrfs"
                ) from None
            raise
        os.close(fd)


def node_lock(lock_dir: Path, name: str, timeout: float = 60.0):
    """Serialize work on volume `name` on this node (loop devices are per node)."""
    return exclusive_lock(
        lock_dir / f"{name}.lock",
        timeout=timeout,
        busy=f"volume {name} is busy: another operation holds its lock",
        error=ValidationError,
    )
