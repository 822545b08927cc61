"""The archipelago provider's verbs, one method each, on top of a storage backend.

Every verb is idempotent where Ganeti may repeat it (create, attach, detach, remove,
grow, open, close): Ganeti retries after partial failures, and a retry must not make
things worse. Each verb holds its volume's lock, which every node sharing the store
sees, so two nodes never change one volume at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from ganeti_ext.environ.extstorage import VolumeRequest
from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.backend import Backend, VolumeSpec
from ganeti_ext.extstorage.filestore.layout import MIB, check_name

log = logging.getLogger(__name__)

# The --disk parameters we understand; parameters.list must say the same.
KNOWN_PARAMS: Mapping[str, str] = {
    "origin": "Name of the image or snapshot to clone the volume from (zero-copy)",
    "origin_size": "Size of the origin in MiB, as Synnefo passes it (checked if given)",
}


class ArchipelagoProvider:
    def __init__(
        self, backend: Backend, node: str, ganeti_version: tuple[int, int] | None = None
    ) -> None:
        self.backend = backend
        self.node = node
        self.ganeti_version = ganeti_version  # None: not known (nothing is refused for it)

    def run(self, request: VolumeRequest) -> str:
        """Carry out `request`; returns what the verb prints on stdout."""
        check_params(request.params)
        if request.verb == "verify":
            self.verify(request)
            return ""
        name = request.name
        assert name is not None  # the parser lets only verify go without a volume
        check_name("VOL_NAME: volume", name)
        if request.snapshot_name is not None:
            check_name("VOL_SNAPSHOT_NAME: snapshot", request.snapshot_name)
        self.backend.check()
        with self.backend.lock(name):
            output = getattr(self, request.verb)(name, request)
        return output or ""

    # --- verbs ---

    def verify(self, request: VolumeRequest) -> None:
        origin = request.params.get("origin")
        if origin:
            self.backend.check()
            self._origin(origin, request)

    def create(self, name: str, request: VolumeRequest) -> None:
        assert request.size_mib is not None  # the parser requires it for create
        check_access(name, request.access, self.ganeti_version)
        size = request.size_mib * MIB
        origin_name = request.params.get("origin") or None
        if origin_name is not None:
            origin = self._origin(origin_name, request)
            if origin.size > size:
                raise ValidationError(
                    f"volume {name}: origin {origin_name} holds {_mib_text(origin.size)}, "
                    f"more than the {request.size_mib} MiB disk asked for; make the disk "
                    "at least that big"
                )
        existing = self.backend.volume(name)
        if existing is None:
            if self.backend.origin(name) is not None:
                raise ValidationError(f"volume {name}: an image or snapshot has that name")
            try:
                self.backend.create(
                    VolumeSpec(name, size, origin_name, uuid=request.uuid, cname=request.cname)
                )
            except FileNotFoundError:
                if origin_name is None or self.backend.origin(origin_name) is not None:
                    raise
                raise ValidationError(
                    f"volume {name}: origin {origin_name} was removed while the volume was "
                    "being made from it"
                ) from None
            log.info(
                "created volume %s (%d MiB)%s",
                name,
                request.size_mib,
                f" from {origin_name}" if origin_name else "",
            )
            return
        if existing.size != size or existing.origin != origin_name:
            raise ValidationError(
                f"volume {name} already exists with {_mib_text(existing.size)} from "
                f"{existing.origin or 'nothing'}, not {request.size_mib} MiB from "
                f"{origin_name or 'nothing'}"
            )
        log.info("volume %s already exists as requested", name)

    def attach(self, name: str, request: VolumeRequest) -> str:
        # The block device for OS scripts and kernelspace disks, then the URI qemu opens
        # itself for disks with access=userspace (Ganeti reads it only for those).
        attachment = self.backend.attach(name)
        lines = [attachment.device or ""]
        if attachment.uri:
            lines.append(f"kvm:{attachment.uri}")
        return "\n".join(lines) + "\n"

    def detach(self, name: str, request: VolumeRequest) -> None:
        self.backend.detach(name)

    def remove(self, name: str, request: VolumeRequest) -> None:
        self.backend.detach(name)
        if self.backend.remove(name):
            log.info("removed %s", name)
        else:
            log.info("volume %s was already removed", name)

    def grow(self, name: str, request: VolumeRequest) -> None:
        assert request.new_size_mib is not None  # required for grow
        volume = self._volume(name)
        wanted = request.new_size_mib * MIB
        if request.size_mib is not None and request.size_mib * MIB != volume.size:
            log.warning(
                "volume %s: Ganeti says %d MiB, the store has %s",
                name,
                request.size_mib,
                _mib_text(volume.size),
            )
        if wanted < volume.size:
            raise ValidationError(
                f"VOL_NEW_SIZE: volume {name} has {_mib_text(volume.size)}; shrinking to "
                f"{request.new_size_mib} MiB is refused"
            )
        self.backend.grow(name, wanted)
        log.info("volume %s is %d MiB", name, request.new_size_mib)

    def setinfo(self, name: str, request: VolumeRequest) -> None:
        assert request.metadata is not None
        self.backend.set_metadata(name, request.metadata)

    def open(self, name: str, request: VolumeRequest) -> None:
        self._volume_or_snapshot(name)
        self.backend.set_open(name, self.node, request.open_exclusive)
        log.info(
            "volume %s open %s on %s",
            name,
            "exclusively" if request.open_exclusive else "shared",
            self.node,
        )

    def close(self, name: str, request: VolumeRequest) -> None:
        self._volume_or_snapshot(name)
        self.backend.clear_open(name, self.node)

    def snapshot(self, name: str, request: VolumeRequest) -> None:
        assert request.snapshot_name is not None  # required for snapshot
        self._volume(name)
        snap = request.snapshot_name
        with self.backend.lock(snap):  # checked under its lock: no create slips in between
            if self.backend.origin(snap) is not None or self.backend.volume(snap) is not None:
                raise ValidationError(
                    f"VOL_SNAPSHOT_NAME: {snap} already exists in the store; remove it first"
                )
            self.backend.snapshot(name, snap)

    # --- helpers ---

    def _volume(self, name: str):
        volume = self.backend.volume(name)
        if volume is None:
            raise ValidationError(f"volume {name} does not exist")
        return volume

    def _volume_or_snapshot(self, name: str) -> None:
        if self.backend.volume(name) is None and self.backend.origin(name) is None:
            raise ValidationError(f"volume {name} does not exist")

    def _origin(self, origin_name: str, request: VolumeRequest):
        check_name("EXTP_ORIGIN: origin", origin_name)
        origin = self.backend.origin(origin_name)
        if origin is None:
            raise ValidationError(
                f"EXTP_ORIGIN: no image or snapshot named {origin_name} in the store "
                "(see `archipelago image list` and `archipelago snapshot list`)"
            )
        declared = request.params.get("origin_size")
        if declared and int(declared) * MIB < origin.size:
            raise ValidationError(
                f"EXTP_ORIGIN_SIZE: {declared} MiB, but origin {origin_name} holds "
                f"{_mib_text(origin.size)}"
            )
        return origin


def check_access(name: str, access: str | None, ganeti_version: tuple[int, int] | None) -> None:
    """Refuse a userspace disk this node's Ganeti could never start, before anything is
    made: attach hands qemu the volume's file, and Ganeti 3.1 builds qemu's -blockdev
    from gluster and rbd URIs only ("Unsupported storage URI scheme" at every start)."""
    if access == "userspace" and ganeti_version is not None and ganeti_version >= (3, 1):
        major, minor = ganeti_version
        raise ValidationError(
            f"volume {name}: EXTP_ACCESS=userspace needs Ganeti 3.0; Ganeti {major}.{minor} "
            "gives qemu only gluster and rbd URIs, not a file; make the disk with "
            "access=kernelspace (the default)"
        )


def check_params(params: Mapping[str, str]) -> None:
    """Reject --disk parameters we do not know or cannot read, naming the variable."""
    for name in params:
        if name not in KNOWN_PARAMS:
            known = ", ".join(sorted(KNOWN_PARAMS))
            raise ValidationError(
                f"EXTP_{name.upper()}: unknown parameter {name!r} (known: {known})"
            )
    size = params.get("origin_size")
    if size and not (size.isascii() and size.isdigit()):
        raise ValidationError(f"EXTP_ORIGIN_SIZE: must be a size in MiB, got {size[:40]!r}")


def _mib_text(size: int) -> str:
    if size % MIB:
        return f"{size / MIB:.2f} MiB"
    return f"{size // MIB} MiB"
