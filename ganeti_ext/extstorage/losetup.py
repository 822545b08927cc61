"""losetup command lines and parsers for its output (pure; see tests/data/losetup/).

Output formats are util-linux 2.38's (Debian 12), run with LC_ALL=C:
  losetup --associated FILE   ->  "/dev/loop1: [65024]:2146842 (/path/file)" per device
  losetup --list --json -O NAME,BACK-FILE  ->  {"loopdevices": [{"name": ..., "back-file": ...}]}
A backing file deleted while attached shows as "<path> (deleted)" in the list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ganeti_ext.errors import ValidationError

LOSETUP = "losetup"
_DEVICE = re.compile(r"^/dev/loop[0-9]+\Z")
_DELETED_SUFFIX = " (deleted)"


@dataclass(frozen=True)
class LoopDevice:
    name: str
    back_file: str | None  # as the kernel reports it, without the " (deleted)" mark
    deleted: bool


def associated_argv(file: Path) -> list[str]:
    """List the loop devices backed by `file` (matched by device and inode)."""
    return [LOSETUP, "--associated", str(file)]


def list_argv() -> list[str]:
    """List every loop device with its backing file, as JSON."""
    return [LOSETUP, "--list", "--json", "--output", "NAME,BACK-FILE"]


def attach_argv(file: Path, *, direct_io: bool, read_only: bool = False) -> list[str]:
    """Attach `file` to the first free loop device and print that device."""
    argv = [LOSETUP, "--find", "--show"]
    if direct_io:
        argv.append("--direct-io=on")
    if read_only:
        argv.append("--read-only")
    argv.append(str(file))
    return argv


def detach_argv(device: str) -> list[str]:
    return [LOSETUP, "--detach", _checked_device(device)]


def set_capacity_argv(device: str) -> list[str]:
    """Make the loop device pick up its backing file's new size."""
    return [LOSETUP, "--set-capacity", _checked_device(device)]


def parse_associated(text: str) -> tuple[str, ...]:
    """Devices from `losetup --associated` output (empty when none)."""
    devices = []
    for line in text.splitlines():
        if not line.strip():
            continue
        device, sep, _ = line.partition(": ")
        if not sep:
            raise ValidationError(f"unexpected losetup --associated line: {line!r}")
        devices.append(_checked_device(device))
    return tuple(devices)


def parse_list_json(text: str) -> tuple[LoopDevice, ...]:
    """Devices from `losetup --list --json` output (empty output: no devices)."""
    if not text.strip():
        return ()
    try:
        entries = json.loads(text)["loopdevices"]
        devices = []
        for entry in entries:
            back_file = entry.get("back-file")
            deleted = bool(back_file) and back_file.endswith(_DELETED_SUFFIX)
            if deleted:
                back_file = back_file[: -len(_DELETED_SUFFIX)]
            devices.append(LoopDevice(_checked_device(entry["name"]), back_file, deleted))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValidationError(f"unexpected losetup --list --json output: {err}") from None
    return tuple(devices)


def parse_attached(text: str) -> str:
    """The device printed by `losetup --find --show`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise ValidationError(f"unexpected losetup --show output: {text!r}")
    return _checked_device(lines[0])


def backed_by(devices: tuple[LoopDevice, ...], file: Path) -> tuple[str, ...]:
    """Names of the devices whose backing file is `file` (also once it was deleted)."""
    wanted = str(file)
    return tuple(device.name for device in devices if device.back_file == wanted)


def _checked_device(device: str) -> str:
    # Device names end up on command lines; accept nothing but /dev/loopN.
    if not _DEVICE.match(device):
        raise ValidationError(f"not a loop device name: {device!r}")
    return device
