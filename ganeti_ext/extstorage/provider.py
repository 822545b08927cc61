"""The archipelago provider's verbs, one method each, on top of a store and loop devices.

Every verb is idempotent where Ganeti may repeat it (create, attach, detach, remove,
grow): Ganeti retries after partial failures, and a retry must not make things worse.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path

from ganeti_ext.environ.extstorage import VolumeRequest
from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.loopdev import LoopDevices
from ganeti_ext.extstorage.store import MIB, VolumeStore, node_lock, reflink_copy

log = logging.getLogger(__name__)

# The --disk parameters we understand; parameters.list must say the same.
KNOWN_PARAMS: Mapping[str, str] = {
    "origin": "Name of the snapshot or image to clone",
}


class ArchipelagoProvider:
    def __init__(
        self,
        store: VolumeStore,
        loops: LoopDevices,
        lock_dir: Path,
        *,
        lock_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.loops = loops
        self.lock_dir = lock_dir
        self.lock_timeout = lock_timeout

    def run(self, request: VolumeRequest) -> str:
        """Carry out `request`; returns what the verb prints on stdout."""
        if request.verb == "verify":
            self.verify(request)
            return ""
        name = request.name
        assert name is not None  # the parser lets only verify go without a volume
        self.store.ensure_layout()
        with node_lock(self.lock_dir, name, self.lock_timeout):
            output = getattr(self, request.verb)(name, request)
        return output or ""

    # --- verbs ---

    def verify(self, request: VolumeRequest) -> None:
        check_params(request.params)

    def create(self, name: str, request: VolumeRequest) -> None:
        check_params(request.params)
        if request.params.get("origin"):
            raise ValidationError(
                "EXTP_ORIGIN: cloning from an origin is not supported yet by this version"
            )
        assert request.size_mib is not None  # the parser requires it for create
        size = request.size_mib * MIB
        if self.store.snapshot_path(name).exists():
            raise ValidationError(f"volume {name}: a snapshot of that name exists")
        path = self.store.volume_path(name)
        try:
            self.store.create_sparse(path, size)
            log.info("created volume %s (%d MiB)", name, request.size_mib)
        except FileExistsError:
            existing = path.stat().st_size
            if existing != size:
                raise ValidationError(
                    f"volume {name} already exists with {_mib(existing)} MiB, "
                    f"not the requested {request.size_mib} MiB"
                ) from None
            log.info("volume %s already exists with the requested size", name)
        self.store.update_meta(
            name,
            {
                "name": name,
                "uuid": request.uuid,
                "cname": request.cname,
                "size_mib": request.size_mib,
            },
        )

    def attach(self, name: str, request: VolumeRequest) -> str:
        if request.access == "userspace":
            raise ValidationError(
                "EXTP_ACCESS=userspace: archipelago volumes are kernel block devices only "
                "(use access=kernelspace)"
            )
        path = self._existing(name)
        devices = self.loops.attached_to(path)
        if devices:
            log.info("volume %s already attached to %s", name, devices[0])
            return devices[0] + "\n"
        # Direct I/O: the guest has its own page cache; a second one in the host
        # only costs memory (measured: same throughput as the file itself).
        device = self.loops.attach(path, direct_io=True, read_only=self.store.is_snapshot(path))
        return device + "\n"

    def detach(self, name: str, request: VolumeRequest) -> None:
        for path in self._candidate_files(name):
            for device in self.loops.attached_to(path):
                self.loops.detach(device, path)

    def remove(self, name: str, request: VolumeRequest) -> None:
        self.detach(name, request)
        path = self.store.locate(name) or self.store.volume_path(name)
        if self.store.remove(name, path):
            log.info("removed %s", path)
        else:
            log.info("volume %s was already removed", name)

    def grow(self, name: str, request: VolumeRequest) -> None:
        assert request.new_size_mib is not None  # required for grow
        path = self._existing(name)
        if self.store.is_snapshot(path):
            raise ValidationError(f"volume {name} is a snapshot and cannot grow")
        current = path.stat().st_size
        wanted = request.new_size_mib * MIB
        if request.size_mib is not None and request.size_mib * MIB != current:
            log.warning(
                "volume %s: Ganeti says %d MiB, the file has %d MiB",
                name,
                request.size_mib,
                _mib(current),
            )
        if wanted < current:
            raise ValidationError(
                f"VOL_NEW_SIZE: volume {name} has {_mib(current)} MiB; "
                f"shrinking to {request.new_size_mib} MiB is refused"
            )
        if wanted > current:
            os.truncate(path, wanted)
            log.info("grew volume %s to %d MiB", name, request.new_size_mib)
        for device in self.loops.attached_to(path):
            self.loops.set_capacity(device)
        self.store.update_meta(name, {"size_mib": request.new_size_mib})

    def setinfo(self, name: str, request: VolumeRequest) -> None:
        self._existing(name)
        self.store.update_meta(name, {"metadata": request.metadata})

    def open(self, name: str, request: VolumeRequest) -> None:
        # Nothing to open for a file; recording who opened it how helps debugging
        # migrations (shared opens on two nodes).
        self._existing(name)
        opened = {
            "exclusive": request.open_exclusive,
            "node": socket.gethostname(),
            "time": int(time.time()),
        }
        self.store.update_meta(name, {"open": opened})

    def close(self, name: str, request: VolumeRequest) -> None:
        self._existing(name)
        self.store.update_meta(name, {"open": None})

    def snapshot(self, name: str, request: VolumeRequest) -> None:
        assert request.snapshot_name is not None  # required for snapshot
        source = self._existing(name)
        snap = request.snapshot_name
        if self.store.locate(snap) is not None:
            raise ValidationError(
                f"VOL_SNAPSHOT_NAME: {snap} already exists in the store; remove it first"
            )
        reflink_copy(source, self.store.snapshot_path(snap))
        size = source.stat().st_size
        self.store.write_meta(
            snap,
            {
                "name": snap,
                "snapshot_of": name,
                "size_mib": _mib(size),
                "created": int(time.time()),
            },
        )
        log.info("snapshot %s of volume %s taken", snap, name)

    # --- helpers ---

    def _existing(self, name: str) -> Path:
        path = self.store.locate(name)
        if path is None:
            raise ValidationError(f"volume {name} does not exist in store {self.store.root}")
        return path

    def _candidate_files(self, name: str) -> list[Path]:
        located = self.store.locate(name)
        if located is not None:
            return [located]
        # Gone from the store, but a loop may still point at the deleted file.
        return [self.store.volume_path(name), self.store.snapshot_path(name)]


def check_params(params: Mapping[str, str]) -> None:
    """Reject --disk parameters we do not know, naming the variable."""
    for name in params:
        if name not in KNOWN_PARAMS:
            known = ", ".join(sorted(KNOWN_PARAMS))
            raise ValidationError(
                f"EXTP_{name.upper()}: unknown parameter {name!r} (known: {known})"
            )


def _mib(size_bytes: int) -> int:
    return size_bytes // MIB
