"""`archipelago fsck`: is every map whole, every block right, nothing left over?

Findings come in three kinds. `damage`: data a map or volume promises is missing or
wrong (exit status 1). `leftover`: debris of interrupted operations, stale lock files,
stray files, harmless but removable. `note`: facts worth knowing (snapshots not yet
digested, blocks gc would remove). `--repair` removes leftovers and rebuilds what can be
rebuilt: a missing or corrupt block from an origin data file that still holds its bytes,
an origin's data file from its blocks.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore import maps, records, work
from ganeti_ext.extstorage.filestore.blocks import BlockCollector, is_zero
from ganeti_ext.extstorage.filestore.compose import compose
from ganeti_ext.extstorage.filestore.layout import (
    DATA_FILE,
    FORMAT_FILE,
    MAP_FILE,
    VOLUME_FILE,
    is_block_name,
)
from ganeti_ext.fsutil import file_lock

log = logging.getLogger(__name__)

DAMAGE, LEFTOVER, NOTE = "damage", "leftover", "note"


@dataclass
class Finding:
    kind: str
    what: str
    repaired: bool = False


class Fsck:
    def __init__(
        self,
        store,
        *,
        repair: bool = False,
        hash_blocks: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        self.store = store
        self.layout = store.layout
        self.repair = repair
        self.hash_blocks = hash_blocks
        self.progress = progress
        self.findings: list[Finding] = []

    def run(self) -> list[Finding]:
        self.store.format  # noqa: B018 - an unreadable format file stops here, by name
        if self.repair:
            with self.store.store_lock(shared=False):
                self._check_all()
        else:
            self._check_all()
        return self.findings

    @property
    def damaged(self) -> bool:
        return any(f.kind == DAMAGE and not f.repaired for f in self.findings)

    # --- the checks ---------------------------------------------------------------------

    def _check_all(self) -> None:
        self._check_top_level()
        self._check_work_dirs()
        referenced = self._check_origins()
        self._check_blocks(referenced)
        self._check_volumes()
        self._check_locks()

    def _add(self, kind: str, what: str, repaired: bool = False) -> None:
        self.findings.append(Finding(kind, what, repaired))
        log.log(logging.WARNING if kind == DAMAGE else logging.INFO, "fsck: %s: %s", kind, what)

    def _check_top_level(self) -> None:
        expected = {FORMAT_FILE, *(d.name for d in self.layout.directories)}
        for entry in sorted(self.layout.root.iterdir()):
            if entry.name not in expected and not entry.name.startswith(f".{FORMAT_FILE}"):
                self._add(NOTE, f"{entry} is not part of the store format (left alone)")
        for directory in self.layout.directories:
            if not directory.is_dir():
                if self.repair:
                    directory.mkdir(mode=0o700, exist_ok=True)
                self._add(DAMAGE, f"{directory} is missing", repaired=self.repair)

    def _check_work_dirs(self) -> None:
        for entry in work.abandoned(self.layout.tmp_dir):
            self._add(LEFTOVER, f"{entry}: left by an interrupted operation", self.repair)
        if self.repair:
            work.reap(self.layout.tmp_dir)

    def _check_origins(self) -> dict[str, list[tuple[str, int]]]:
        """Check every map; returns block -> [(origin, index)] of digested maps."""
        referenced: dict[str, list[tuple[str, int]]] = {}
        for name in self.store.origin_names():
            directory = self.layout.origin_dir(name)
            try:
                found = maps.read(directory / MAP_FILE)
            except FileNotFoundError:
                self._add(DAMAGE, f"origin {name}: no {MAP_FILE}")
                continue
            except ValidationError as err:
                self._add(DAMAGE, f"origin {name}: {err}")
                continue
            if found.name != name:
                self._add(DAMAGE, f"origin {name}: its map names {found.name}")
            if not found.digested:
                self._add(NOTE, f"snapshot {name} is not digested yet")
            for index, digest in enumerate(found.blocks or ()):
                if digest is not None:
                    referenced.setdefault(digest, []).append((name, index))
            self._check_origin_data(name, found)
        return referenced

    def _check_origin_data(self, name: str, found: maps.Map) -> None:
        data = self.layout.origin_dir(name) / DATA_FILE
        try:
            size = data.stat().st_size
        except FileNotFoundError:
            size = None
        if size == found.size:
            return
        problem = (
            "its data file is missing"
            if size is None
            else (f"its data file has {size} bytes, its map says {found.size}")
        )
        can_rebuild = found.digested and all(
            self.layout.block(d).exists() for d in found.blocks or () if d
        )
        if self.repair and can_rebuild:
            assert found.blocks is not None
            staged = self.layout.tmp_dir / f".rebuild-{name}"
            staged.unlink(missing_ok=True)
            compose(staged, found.size, found.block_size, found.blocks, self.layout.block)
            os.rename(staged, data)
            self._add(DAMAGE, f"origin {name}: {problem}; rebuilt from its blocks", True)
        else:
            self._add(DAMAGE, f"origin {name}: {problem}")

    def _check_blocks(self, referenced: dict[str, list[tuple[str, int]]]) -> None:
        block_size = self.store.block_size
        seen: set[str] = set()
        total = len(referenced)
        checked = 0
        for directory in sorted(self.layout.blocks_dir.iterdir()):
            entries = sorted(directory.iterdir()) if directory.is_dir() else []
            if not directory.is_dir() or len(directory.name) != 2:
                self._stray(directory)
                continue
            for entry in entries:
                if not is_block_name(entry.name) or entry.name[:2] != directory.name:
                    self._stray(entry)
                    continue
                seen.add(entry.name)
                if entry.name not in referenced:
                    continue
                checked += 1
                if self.progress is not None:
                    self.progress(checked, total)
                problem = self._block_problem(entry, block_size)
                if problem:
                    self._bad_block(entry.name, problem, referenced[entry.name])
        for digest, users in referenced.items():
            if digest not in seen:
                self._bad_block(digest, "missing", users)
        unreferenced = len(seen - set(referenced))
        if unreferenced:
            self._add(NOTE, f"{unreferenced} blocks are referenced by no map (gc removes them)")

    def _block_problem(self, path: Path, block_size: int) -> str | None:
        size = path.stat().st_size
        if size != block_size:
            return f"{size} bytes instead of {block_size}"
        if not self.hash_blocks:
            return None
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
        if digest.hexdigest() != path.name:
            return "its bytes do not hash to its name"
        return None

    def _bad_block(self, digest: str, problem: str, users: list[tuple[str, int]]) -> None:
        origin, index = users[0]
        what = f"block {digest} ({problem}), used by {origin} block {index}"
        if len(users) > 1:
            what += f" and {len(users) - 1} more"
        rebuilt = self.repair and self._rebuild_block(digest, users)
        if rebuilt:
            what += "; rebuilt from an origin's data file"
        self._add(DAMAGE, what, rebuilt)

    def _rebuild_block(self, digest: str, users: list[tuple[str, int]]) -> bool:
        """Put back a block from an origin data file whose range still hashes to it."""
        block_size = self.store.block_size
        target = self.layout.block(digest)
        for origin, index in users:
            data = self.layout.origin_dir(origin) / DATA_FILE
            try:
                fd = os.open(data, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                offset = index * block_size
                chunk = os.pread(fd, block_size, offset)
                if not chunk or is_zero(chunk):
                    continue
                padded = chunk + bytes(block_size - len(chunk))
                if hashlib.sha256(padded).hexdigest() != digest:
                    continue
                with work.Operation(self.layout.tmp_dir, "repair") as op:
                    collector = BlockCollector(self.layout, op.path, block_size)
                    if target.exists():
                        os.rename(target, op.path / "corrupt")
                    collector.add_cloned(digest, fd, offset, len(chunk))
                    collector.commit()
                return True
            finally:
                os.close(fd)
        return False

    def _stray(self, path: Path) -> None:
        self._add(LEFTOVER, f"{path} is not a block", self.repair)
        if self.repair:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    def _check_volumes(self) -> None:
        for name in self.store.volume_names():
            directory = self.layout.volume_dir(name)
            data, record = directory / DATA_FILE, directory / VOLUME_FILE
            if not data.exists():
                self._add(DAMAGE, f"volume {name}: its data file is missing")
                continue
            try:
                volume = records.parse(
                    record.read_text(encoding="utf-8"), data.stat().st_size, str(record)
                )
            except FileNotFoundError:
                self._add(DAMAGE, f"volume {name}: no {VOLUME_FILE}")
                continue
            except ValidationError as err:
                self._add(DAMAGE, f"volume {name}: {err}")
                continue
            if volume.name != name:
                self._add(DAMAGE, f"volume {name}: its record names {volume.name}")

    def _check_locks(self) -> None:
        names = set(self.store.volume_names()) | set(self.store.origin_names())
        for lock in sorted(self.layout.locks_dir.glob("*.lock")):
            name = lock.name[: -len(".lock")]
            if lock == self.layout.store_lock or name in names:
                continue
            try:
                with file_lock(lock, timeout=0, busy="held", error=ValidationError):
                    if self.repair:
                        lock.unlink(missing_ok=True)
            except ValidationError:
                continue  # held: an operation on that name is running
            self._add(NOTE, f"{lock}: lock of a name that no longer exists", self.repair)
