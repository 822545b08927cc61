"""Where everything of a file store lives, and the versioned format file that says so.

The format is documented in docs/archipelago-store.md; this module is its only reader
and writer. Version 1:

    <store>/archipelago-store.json  {"format": "archipelago-store", "version": 1,
                                      "block_size": ..., "created": ..., "store_id": ...}
    <store>/blocks/<aa>/<sha256>    read-only blocks, named by the SHA-256 of their bytes
    <store>/origins/<name>/map.json an image or snapshot: its size and ordered blocks
    <store>/origins/<name>/data     its bytes, composed from the blocks by reflink
    <store>/volumes/<name>/data     a volume's bytes (what the loop device backs)
    <store>/volumes/<name>/volume.json  who it belongs to, its origin, who opened it
    <store>/locks/<name>.lock       per-name locks; store.lock (gc against commits)
    <store>/tmp/<operation>/        one running (or interrupted) operation's work
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganeti_ext.errors import ValidationError
from ganeti_ext.fsutil import atomic_write

FORMAT_NAME = "archipelago-store"
FORMAT_VERSION = 1
FORMAT_FILE = "archipelago-store.json"
MIB = 1024 * 1024
DEFAULT_BLOCK_SIZE = 4 * MIB
MIN_BLOCK_SIZE = 64 * 1024  # a multiple of any file system block size reflinks work on
MAX_BLOCK_SIZE = 64 * MIB
# Names become single path components; Ganeti's are <uuid>.ext.disk<n> and <vol>.snap.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:-]{0,199}\Z")
RESERVED_NAME = "store"  # locks/<name>.lock would be the store lock
_HASH = re.compile(r"^[0-9a-f]{64}\Z")
_REFLINK_FILE_SYSTEMS = ("xfs", "btrfs")


def check_name(kind: str, name: str) -> str:
    """`name` if it can name a volume, image or snapshot; else a ValidationError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
        shown = repr(name)[:80]
        raise ValidationError(
            f"{kind} name {shown}: must be 1-200 letters, digits or _.+:- , start with a "
            "letter, digit or _, and hold no '/', '..' or control characters"
        )
    if name == RESERVED_NAME:
        raise ValidationError(f"{kind} name {name!r}: reserved (locks/store.lock is the store's)")
    return name


def is_block_name(name: str) -> bool:
    return bool(_HASH.fullmatch(name))


@dataclass(frozen=True)
class StoreFormat:
    version: int
    block_size: int
    created: str
    store_id: str

    def to_json(self) -> dict:
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "block_size": self.block_size,
            "created": self.created,
            "store_id": self.store_id,
        }


def json_object(text: str, where: str) -> dict[str, Any]:
    """A store file's JSON object (format file, map, volume record); a ValidationError
    names the file when it is not JSON or not an object."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValidationError(f"{where}: not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError(f"{where}: not a JSON object")
    return data


def parse_format(text: str, where: str) -> StoreFormat:
    """The format file's content, checked; a ValidationError names the file and field."""
    data = json_object(text, where)
    if data.get("format") != FORMAT_NAME:
        raise ValidationError(f"{where}: not an archipelago store format file")
    version = data.get("version")
    if version != FORMAT_VERSION:
        raise ValidationError(
            f"{where}: store format version {version!r}; this archipelago reads version "
            f"{FORMAT_VERSION} only"
        )
    block_size = data.get("block_size")
    if (
        not isinstance(block_size, int)
        or isinstance(block_size, bool)
        or not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE
        or block_size & (block_size - 1)
    ):
        raise ValidationError(f"{where}: block_size {block_size!r} is not a valid block size")
    created, store_id = data.get("created"), data.get("store_id")
    if not isinstance(created, str) or not isinstance(store_id, str):
        raise ValidationError(f"{where}: created and store_id must be strings")
    return StoreFormat(version, block_size, created, store_id)


class Layout:
    """The paths of one store (nothing here touches the file system)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.format_file = self.root / FORMAT_FILE
        self.blocks_dir = self.root / "blocks"
        self.origins_dir = self.root / "origins"
        self.volumes_dir = self.root / "volumes"
        self.locks_dir = self.root / "locks"
        self.tmp_dir = self.root / "tmp"
        self.store_lock = self.locks_dir / "store.lock"

    @property
    def directories(self) -> tuple[Path, ...]:
        return (self.blocks_dir, self.origins_dir, self.volumes_dir, self.locks_dir, self.tmp_dir)

    def block(self, digest: str) -> Path:
        return self.blocks_dir / digest[:2] / digest

    def origin_dir(self, name: str) -> Path:
        return self.origins_dir / name

    def volume_dir(self, name: str) -> Path:
        return self.volumes_dir / name

    def name_lock(self, name: str) -> Path:
        return self.locks_dir / f"{name}.lock"


# Inside an origin's or volume's directory.
MAP_FILE = "map.json"
DATA_FILE = "data"
VOLUME_FILE = "volume.json"


def read_format(layout: Layout) -> StoreFormat:
    """The store's format; a clear error when `layout.root` is not an initialized store."""
    try:
        text = layout.format_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not layout.root.is_dir():
            raise ValidationError(
                f"store {layout.root} does not exist (is the shared storage mounted? "
                "see [store] path in /etc/archipelago/archipelago.conf)"
            ) from None
        raise ValidationError(
            f"{layout.root} is not an archipelago store (no {FORMAT_FILE}); create one with "
            f"`archipelago store init {layout.root}`"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValidationError(f"cannot read {layout.format_file}: {err}") from None
    return parse_format(text, str(layout.format_file))


def init_store(layout: Layout, block_size: int) -> StoreFormat:
    """Write the format file and directories into an existing, empty-enough directory."""
    if block_size & (block_size - 1) or not MIN_BLOCK_SIZE <= block_size <= MAX_BLOCK_SIZE:
        raise ValidationError(
            f"block size {block_size}: must be a power of two from {MIN_BLOCK_SIZE} to "
            f"{MAX_BLOCK_SIZE} bytes"
        )
    if layout.format_file.exists():
        existing = read_format(layout)
        if existing.block_size != block_size:
            raise ValidationError(
                f"{layout.root} is already a store with block size {existing.block_size}; "
                "the block size of a store cannot change"
            )
        return existing
    if not layout.root.is_dir():
        raise ValidationError(f"{layout.root} is not a directory (mount the file system first)")
    fmt = StoreFormat(
        FORMAT_VERSION,
        block_size,
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        secrets.token_hex(8),
    )
    for directory in layout.directories:
        directory.mkdir(mode=0o700, exist_ok=True)
    atomic_write(
        layout.format_file, (json.dumps(fmt.to_json(), indent=1) + "\n").encode(), mode=0o644
    )
    return fmt


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str


def parse_mountinfo(text: str) -> list[Mount]:
    """Mounts from /proc/self/mountinfo (see proc(5)); octal escapes in paths decoded."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[dash + 1], _unescape(fields[dash + 2])))
    return mounts


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: str, mounts: list[Mount]) -> Mount | None:
    """The mount a (resolved) path lives on: the last, longest matching mount point."""
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/") or "/"
        inside = path == point or path.startswith(point.rstrip("/") + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def check_file_system(root: Path, mountinfo: str | None = None) -> Mount:
    """Refuse a store on a file system that cannot share extents, naming the one it is on."""
    if mountinfo is None:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as stream:
            mountinfo = stream.read()
    mount = mount_of(os.path.realpath(root), parse_mountinfo(mountinfo))
    if mount is None:
        raise ValidationError(f"cannot tell which file system {root} is on")
    if mount.fs_type not in _REFLINK_FILE_SYSTEMS:
        raise ValidationError(
            f"store {root} is on {mount.fs_type} ({mount.source} at {mount.mount_point}), "
            "which cannot share extents between files: put the store on XFS made with "
            "reflink=1 or on btrfs"
        )
    return mount
