"""The file store as a storage backend: volumes, origins and their locks on one file system.

Every change is made in a work directory (filestore.work) and committed by one rename,
so a crash at any point leaves either the old state or the new one plus debris that the
next operation removes. Locks are flock()s on files in the store itself, so they hold
across all nodes that share it (the lab's two nodes share one XFS; the store accepts only
XFS and btrfs, not cluster file systems: several machines wait for the RBD backend).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.extstorage.backend import (
    Attachment,
    OpenConflict,
    Origin,
    Volume,
    VolumeSpec,
    opened,
)
from ganeti_ext.extstorage.filestore import maps, records, work
from ganeti_ext.extstorage.filestore.blocks import BlockCollector
from ganeti_ext.extstorage.filestore.compose import clone_whole, set_size
from ganeti_ext.extstorage.filestore.layout import (
    DATA_FILE,
    MAP_FILE,
    VOLUME_FILE,
    Layout,
    StoreFormat,
    check_file_system,
    read_format,
)
from ganeti_ext.extstorage.loopdev import LoopDevices
from ganeti_ext.fsutil import file_lock, sync_directory

log = logging.getLogger(__name__)

Spawn = Callable[[Sequence[str]], None]


class StoreFull(ValidationError):
    """ENOSPC or EDQUOT in the middle of an operation (whose work was undone)."""


class VolumeExists(ValidationError):
    """The name is taken (possibly by a concurrent create on another node)."""


class FileStore:
    def __init__(
        self,
        root: Path,
        *,
        loops: LoopDevices | None = None,
        lock_timeout: float = 60.0,
        spawn: Spawn | None = None,
        mountinfo: str | None = None,
    ) -> None:
        self.layout = Layout(root)
        self.loops = loops
        self.lock_timeout = lock_timeout
        self.spawn = spawn
        self._mountinfo = mountinfo
        self._format: StoreFormat | None = None

    # --- the store as a whole ---------------------------------------------------------

    @property
    def format(self) -> StoreFormat:
        if self._format is None:
            self._format = read_format(self.layout)
        return self._format

    @property
    def block_size(self) -> int:
        return self.format.block_size

    def check(self) -> None:
        self.format  # noqa: B018 - reading it checks it
        check_file_system(self.layout.root, self._mountinfo)

    def lock(self, name: str):
        return file_lock(
            self.layout.name_lock(name),
            timeout=self.lock_timeout,
            busy=f"{name} is busy: another operation (on this or another node) holds its lock",
            error=ValidationError,
        )

    def store_lock(self, *, shared: bool):
        """Shared by commits that add references to blocks, exclusive for gc's sweep."""
        return file_lock(
            self.layout.store_lock,
            shared=shared,
            timeout=self.lock_timeout,
            busy="the store is busy: garbage collection holds its lock",
            error=ValidationError,
        )

    @contextmanager
    def operation(self, kind: str, what: str | None = None) -> Iterator[work.Operation]:
        """A work directory for one operation; a full file system is a clear error
        naming `what` the operation was about."""
        try:
            work.reap(self.layout.tmp_dir)
            with work.Operation(self.layout.tmp_dir, kind) as op:
                yield op
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull(
                    f"{what or kind}: the store's file system is full ({err.strerror}); "
                    "nothing was changed and the space it took is given back"
                ) from None
            raise

    # --- reading ------------------------------------------------------------------------

    def volume(self, name: str) -> Volume | None:
        directory = self.layout.volume_dir(name)
        try:
            size = (directory / DATA_FILE).stat().st_size
            text = (directory / VOLUME_FILE).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return records.parse(text, size, str(directory / VOLUME_FILE))

    def volume_names(self) -> list[str]:
        return _names(self.layout.volumes_dir)

    def map(self, name: str) -> maps.Map | None:
        try:
            return maps.read(self.layout.origin_dir(name) / MAP_FILE)
        except FileNotFoundError:
            return None

    def origin(self, name: str) -> Origin | None:
        found = self.map(name)
        if found is None:
            return None
        return Origin(
            found.name, found.kind, found.size, found.digested, found.created, found.source
        )

    def origin_names(self) -> list[str]:
        return _names(self.layout.origins_dir)

    def origin_data(self, name: str) -> Path:
        return self.layout.origin_dir(name) / DATA_FILE

    def volume_data(self, name: str) -> Path:
        return self.layout.volume_dir(name) / DATA_FILE

    # --- volumes --------------------------------------------------------------------------

    def create(self, spec: VolumeSpec) -> None:
        with self.operation("create", f"volume {spec.name}") as op:
            staged = op.path / "volume"
            staged.mkdir()
            data = staged / DATA_FILE
            if spec.origin is not None:
                clone_whole(self.origin_data(spec.origin), data, spec.size, f"volume {spec.name}")
            else:
                _create_sparse(data, spec.size, f"volume {spec.name}")
            volume = Volume(
                name=spec.name,
                size=spec.size,
                origin=spec.origin,
                uuid=spec.uuid,
                cname=spec.cname,
                metadata=None,
                created=maps.now_iso(),
            )
            records.write(staged / VOLUME_FILE, volume)
            self._commit_dir(staged, self.layout.volume_dir(spec.name))

    def remove(self, name: str, *, kinds: Sequence[str] = ("volume", "snapshot")) -> bool:
        """Remove a volume or origin of one of `kinds`; False if there was none."""
        target = None
        if "volume" in kinds and self.layout.volume_dir(name).is_dir():
            target = self.layout.volume_dir(name)
        else:
            found = self.map(name)
            if found is not None and found.kind in kinds:
                target = self.layout.origin_dir(name)
            elif found is not None:
                raise ValidationError(
                    f"{name} is an {found.kind}, not a volume: remove it with "
                    f"`archipelago {found.kind} remove {name}`"
                )
        if target is None:
            return False
        with self.operation("remove") as op:
            # One rename makes it vanish; the bytes go when the work directory does.
            os.rename(target, op.path / "removed")
            sync_directory(target.parent)
        # Safe even while held: a waiter on the unlinked file notices and locks anew.
        self.layout.name_lock(name).unlink(missing_ok=True)
        return True

    def grow(self, name: str, size: int) -> None:
        data = self.volume_data(name)
        fd = os.open(data, os.O_WRONLY | os.O_CLOEXEC)
        try:
            set_size(fd, size, f"volume {name}")
            os.fsync(fd)
        finally:
            os.close(fd)
        if self.loops is not None:
            for device in self.loops.attached_to(data):
                self.loops.set_capacity(device)

    def snapshot(self, volume: str, snapshot: str) -> None:
        with self.operation("snapshot", f"snapshot {snapshot} of volume {volume}") as op:
            staged = op.path / "origin"
            staged.mkdir()
            clone_whole(self.volume_data(volume), staged / DATA_FILE)
            record = self.volume(volume)
            frozen = maps.Map(
                kind="snapshot",
                name=snapshot,
                size=(staged / DATA_FILE).stat().st_size,
                block_size=self.block_size,
                blocks=None,
                source={"volume": volume, "origin": record.origin if record else None},
            )
            maps.write(staged / MAP_FILE, frozen)
            self._commit_dir(staged, self.layout.origin_dir(snapshot))
        log.info(
            "snapshot %s of volume %s taken; hashing its blocks in the background", snapshot, volume
        )
        if self.spawn is not None:
            try:
                self.spawn(digest_command(snapshot))
            except GanetiExtError as err:
                # The snapshot is taken and usable; gc digests what is left pending.
                log.warning("cannot start the digest of %s (gc will do it): %s", snapshot, err)

    def attach(self, name: str) -> Attachment:
        assert self.loops is not None
        path, read_only = self._attachable(name)
        devices = self.loops.attached_to(path, replaced=False)  # this very file only
        if devices:
            log.info("%s already attached to %s", name, devices[0])
            return Attachment(devices[0], uri=str(path))
        # Direct I/O: the guest has its own page cache; a second one in the host only
        # costs memory (measured: the same throughput as the file itself).
        device = self.loops.attach(path, direct_io=True, read_only=read_only)
        return Attachment(device, uri=str(path))

    def detach(self, name: str) -> None:
        assert self.loops is not None
        for path in (self.volume_data(name), self.origin_data(name)):
            for device in self.loops.attached_to(path):
                self.loops.detach(device, path)

    def set_metadata(self, name: str, metadata: str) -> None:
        self._update_record(name, lambda volume: _replace(volume, metadata=metadata))

    def set_open(self, name: str, node: str, exclusive: bool) -> None:
        def change(volume: Volume) -> Volume:
            try:
                return _replace(volume, opens=opened(volume.opens, node, exclusive))
            except OpenConflict as conflict:
                how = "exclusively" if exclusive else "shared"
                raise ValidationError(
                    f"volume {name}: cannot open {how} on {node}: it is open on {conflict}; "
                    "if that node is down, release it with "
                    f"`archipelago volume release {name} --node {conflict.holders[0]}`"
                ) from None

        self._update_record(name, change)

    def clear_open(self, name: str, node: str) -> None:
        self._update_record(
            name,
            lambda volume: _replace(
                volume, opens={n: e for n, e in volume.opens.items() if n != node}
            ),
        )

    def publish(self, staged: Path, name: str, collector: BlockCollector) -> None:
        """Make a staged origin (data + map) visible under `name`, with its blocks.

        The blocks get their store names and the origin appears in one step as far as
        garbage collection is concerned (it waits for the store lock).
        """
        with self.lock(name), self.store_lock(shared=True):
            if self.layout.volume_dir(name).exists():
                raise VolumeExists(f"{name} already exists in the store (a volume)")
            collector.commit()
            self._commit_dir(staged, self.layout.origin_dir(name))

    # --- helpers ------------------------------------------------------------------------

    def _attachable(self, name: str) -> tuple[Path, bool]:
        if self.layout.volume_dir(name).is_dir():
            return self.volume_data(name), False
        found = self.map(name)
        if found is not None and found.kind == "snapshot":
            return self.origin_data(name), True
        raise ValidationError(f"volume {name} does not exist in store {self.layout.root}")

    def _update_record(self, name: str, change: Callable[[Volume], Volume]) -> None:
        path = self.layout.volume_dir(name) / VOLUME_FILE
        volume = self.volume(name)
        if volume is None:
            if self.map(name) is not None:
                return  # snapshots have no record: nothing to keep for them
            raise ValidationError(f"volume {name} does not exist in store {self.layout.root}")
        since = records.open_times(path.read_text(encoding="utf-8"))
        updated = change(volume)
        for node in updated.opens:
            if node not in volume.opens or volume.opens[node] != updated.opens[node]:
                since[node] = maps.now_iso()
        records.write(path, updated, since)

    def _commit_dir(self, staged: Path, target: Path) -> None:
        try:
            os.rename(staged, target)
        except OSError as err:
            if err.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.EISDIR):
                raise VolumeExists(f"{target.name} already exists in the store") from None
            raise
        sync_directory(target.parent)


def digest_command(snapshot: str, config: Path | None = None) -> list[str]:
    """The command that digests a snapshot in the background: this interpreter, this
    package, the configuration file in use (None: the default one)."""
    chosen = ["--config", str(config)] if config else []
    return [
        sys.executable, "-m", "ganeti_ext.extstorage.admin", *chosen,
        "snapshot", "digest", "--quiet", snapshot,
    ]  # fmt: skip


def _names(directory: Path) -> list[str]:
    try:
        return sorted(entry.name for entry in directory.iterdir() if entry.is_dir())
    except FileNotFoundError:
        return []


def _create_sparse(path: Path, size: int, what: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        set_size(fd, size, what)
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(volume: Volume, **changes: object) -> Volume:
    return replace(volume, **changes)  # type: ignore[arg-type]
