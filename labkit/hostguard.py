"""Record host directories before the lab touches them, and put them back on `down`.

Files dpkg owns are never removed (the suite's own packages may add some), anything
else the lab, Ganeti or RabbitMQ added is removed, and files that were there before are
restored byte for byte (e.g. /root/.ssh/authorized_keys, which Ganeti appends to).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path

from labkit import settings
from labkit.sh import log

MANIFEST = settings.GUARD_DIR / "manifest.json"
ARCHIVE = settings.GUARD_DIR / "backup.tar"


def recorded() -> bool:
    return MANIFEST.exists() and ARCHIVE.exists()


def _walk(top: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(top):
        found.extend(os.path.join(root, name) for name in dirs + files)
    return found


def record() -> None:
    """Snapshot the guarded directories unless a snapshot is already kept."""
    if recorded():
        return
    settings.GUARD_DIR.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[str] | None] = {}
    tmp = ARCHIVE.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for top in settings.GUARDED_DIRS:
            if not os.path.lexists(top):
                manifest[top] = None
                continue
            manifest[top] = _walk(top)
            tar.add(top, recursive=True)
    tmp.rename(ARCHIVE)
    MANIFEST.write_text(json.dumps(manifest))


def _dpkg_owned() -> set[str]:
    owned: set[str] = set()
    for listing in Path("/var/lib/dpkg/info").glob("*.list"):
        owned.update(listing.read_text(errors="replace").splitlines())
    for conffiles in Path("/var/lib/dpkg/info").glob("*.conffiles"):
        owned.update(conffiles.read_text(errors="replace").splitlines())
    return owned


def _parents(path: str, top: str) -> list[str]:
    parents = []
    while len(path) > len(top):
        path = os.path.dirname(path)
        parents.append(path)
    return parents


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def restore() -> None:
    """Put the guarded directories back as recorded, then forget the record."""
    if not recorded():
        return
    manifest: dict[str, list[str] | None] = json.loads(MANIFEST.read_text())
    owned = _dpkg_owned()
    for top, before in manifest.items():
        if not os.path.lexists(top):
            continue
        keep = set(before or ()) | {p for p in owned if p.startswith(top + "/")}
        keep |= {parent for path in keep for parent in _parents(path, top)}
        # Deepest first, so a directory is emptied before it is judged.
        for path in sorted(_walk(top), key=len, reverse=True):
            if path in keep:
                continue
            log(f"guard: removing {path}")
            _remove(path)
        if before is None and top not in owned:
            log(f"guard: removing {top}")
            _remove(top)
    with tarfile.open(ARCHIVE) as tar:
        # Directories too: ensure-dirs changes their owners and modes.
        # Our own archive of host paths, owners and modes: trusted whole. Said explicitly,
        # since extractall's default filter changes in Python 3.14.
        extra = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        tar.extractall("/", numeric_owner=True, **extra)
    shutil.rmtree(settings.GUARD_DIR, ignore_errors=True)
