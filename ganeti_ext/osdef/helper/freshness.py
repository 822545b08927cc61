"""Whether the helper VM was built from the snf-image code installed now.

The helper carries the tasks' code, and the package modules they import, compiled into
its initramfs. After an upgrade a helper built earlier would personalize with the old
code (and speak the old protocol), so the OS scripts refuse it and name the fix. The
build records which package files went in, with the host-side files that make the
helper's contract (its init and kernel modules, how it is started, the configuration it
is given, how its output is read), and one SHA-256 over them (manifest.json, "code"); the
check hashes the same files as installed now.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.helper.vm import boot_files_lock

# The directory holding the ganeti_ext package (site-packages, or a source tree).
PACKAGE_ROOT = Path(__file__).resolve().parents[3]
MANIFEST = "manifest.json"
BOOT_FILES = ("vmlinuz", "initrd.img")
CONTRACT_FILES = tuple(
    f"ganeti_ext/osdef/helper/{name}.py" for name in ("build", "vm", "config", "protocol")
)


def contents_digest(contents: Mapping[str, bytes]) -> str:
    """One SHA-256 over files' names and bytes (names relative to the package root)."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        digest.update(name.encode() + b"\0" + contents[name] + b"\0")
    return digest.hexdigest()


def code_digest(package_root: Path, files: Iterable[str]) -> str:
    """contents_digest of `files` as they are under `package_root` now."""
    return contents_digest({name: (package_root / name).read_bytes() for name in files})


def code_record(compiled: Mapping[str, bytes], package_root: Path = PACKAGE_ROOT) -> dict:
    """What the build writes under "code": the bytes it compiled into the helper (read
    once, so a package upgraded during the build cannot be recorded as what went in),
    with the contract files as they are now."""
    if not compiled:
        raise ValidationError(f"no module of the package under {package_root} went into the helper")
    contents = dict(compiled)
    for name in CONTRACT_FILES:
        contents.setdefault(name, (package_root / name).read_bytes())
    return {"files": sorted(contents), "sha256": contents_digest(contents)}


def _package_file(name: object) -> bool:
    if not isinstance(name, str):
        return False
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and path.parts[:1] == ("ganeti_ext",)


def check(helper_dir: Path, package_root: Path = PACKAGE_ROOT) -> None:
    """Raise ValidationError unless `helper_dir` holds a helper built from this code."""
    rebuild = "run snf-image-update-helper"
    if not helper_dir.is_dir():  # checked first: taking the lock would make it
        raise ValidationError(f"the helper VM is not built in {helper_dir}: {rebuild}")
    with boot_files_lock(helper_dir, shared=True):
        missing = [name for name in BOOT_FILES if not (helper_dir / name).is_file()]
        try:
            manifest = json.loads((helper_dir / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            manifest = None
    if missing or not isinstance(manifest, dict):
        raise ValidationError(f"the helper VM is not built in {helper_dir}: {rebuild}")
    built = manifest.get("built", "at an unknown time")
    code = manifest.get("code")
    stale = ValidationError(
        f"the helper VM in {helper_dir} (built {built}) carries other snf-image code than "
        f"the installed one: {rebuild}"
    )
    if not isinstance(code, dict) or not isinstance(code.get("files"), list):
        raise stale
    files = code["files"]
    if not files or not all(_package_file(name) for name in files):
        raise stale
    try:
        now = code_digest(package_root, files)
    except OSError:  # a module the helper carries is gone from the package
        raise stale from None
    if now != code.get("sha256"):
        raise stale
