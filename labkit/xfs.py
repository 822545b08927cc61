"""Loop-mounted XFS file systems with reflinks: the lab's store, tests' and benchmarks' scratch.

The host's root is ext4, which cannot share extents; a sparse file formatted with
`mkfs.xfs -m reflink=1` and mounted through a loop device can (it takes only the space
actually written). The loop device is detached when the file system is unmounted.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from labkit.sh import LabError, log, run

SCRATCH_ROOT = Path("/var/tmp/ganeti-ext-xfs")


def _mount_entry(mountpoint: Path) -> tuple[str, str] | None:
    """(file system type, source device) mounted exactly at `mountpoint`, or None."""
    wanted = os.path.realpath(mountpoint)
    found = None
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as stream:
        for line in stream:
            fields = line.split()
            if len(fields) > 4 and "-" in fields and fields[4] == wanted:
                dash = fields.index("-")
                found = (fields[dash + 1], fields[dash + 2])
    return found


def mounted_fs(mountpoint: Path) -> str | None:
    entry = _mount_entry(mountpoint)
    return entry[0] if entry else None


def make(image: Path, mountpoint: Path, size: str) -> None:
    """Create (or reuse) `image` as XFS with reflinks and mount it at `mountpoint`.

    The loop device reads and writes the image with direct I/O: the store's data then
    reaches the machine's disk as it would on a real one, instead of being cached a
    second time in the host's page cache (which would also make benchmarks measure
    memory copies).
    """
    if mounted_fs(mountpoint) == "xfs":
        return
    image.parent.mkdir(parents=True, exist_ok=True)
    mountpoint.mkdir(parents=True, exist_ok=True)
    if not image.exists():  # made aside and renamed: an interrupted mkfs is never reused
        partial = image.with_name(image.name + ".partial")
        run(["truncate", "-s", size, partial])
        run(["mkfs.xfs", "-q", "-f", "-m", "reflink=1", partial], timeout=300)
        partial.rename(image)
    device = run(["losetup", "--direct-io=on", "--find", "--show", image]).stdout.strip()
    proc = run(["mount", device, mountpoint], timeout=120, check=False)
    if proc.returncode != 0 or mounted_fs(mountpoint) != "xfs":
        run(["losetup", "--detach", device], check=False)
        raise LabError(f"{image} did not mount as XFS at {mountpoint}: {proc.stderr.strip()}")


def unmount(mountpoint: Path) -> None:
    entry = _mount_entry(mountpoint)
    if entry is None:
        return
    proc = run(["umount", mountpoint], timeout=120, check=False)
    if proc.returncode != 0:
        raise LabError(f"cannot unmount {mountpoint}: {proc.stderr.strip()}")
    if entry[1].startswith("/dev/loop"):
        run(["losetup", "--detach", entry[1]], check=False)


def scratch(name: str, size: str = "16G") -> Path:
    """A fresh XFS of this process at SCRATCH_ROOT/<pid>-<name>/mnt (for tests, benchmarks)."""
    clear_stale_scratch()
    base = SCRATCH_ROOT / f"{os.getpid()}-{name}"
    make(base / "xfs.img", base / "mnt", size)
    return base / "mnt"


def _loop_devices() -> list[dict[str, str]]:
    listing = run(
        ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE,MAJ:MIN,BACK-MAJ:MIN"],
        check=False,
    )
    try:
        devices = json.loads(listing.stdout or "{}").get("loopdevices", [])
    except ValueError:
        return []
    return [{key: str(value or "").strip() for key, value in d.items()} for d in devices]


def detach_loops_under(directory: Path) -> None:
    """Detach loop devices backed by files below `directory` (a failed test's leftovers)."""
    prefix = f"{os.path.realpath(directory)}/"
    for device in _loop_devices():
        if device["back-file"].startswith(prefix):
            run(["losetup", "--detach", device["name"]], check=False)


def detach_loops_on(image: Path) -> None:
    """Detach every loop device whose backing file lives on the file system in `image`.

    By device number, not by path: a volume attached from inside a lab namespace shows a
    path relative to that namespace's mount once the namespace is gone.
    """
    wanted = os.path.realpath(image)
    devices = _loop_devices()
    file_systems = {d["maj:min"] for d in devices if d["back-file"] == wanted}
    for device in devices:
        if device["back-maj:min"] in file_systems:
            run(["losetup", "--detach", device["name"]], check=False)


def drop_scratch(mountpoint: Path) -> None:
    detach_loops_on(mountpoint.parent / "xfs.img")
    unmount(mountpoint)
    shutil.rmtree(mountpoint.parent, ignore_errors=True)


def clear_stale_scratch() -> None:
    """Unmount and remove scratch file systems whose process is gone (a killed run)."""
    if not SCRATCH_ROOT.is_dir():
        return
    for base in SCRATCH_ROOT.iterdir():
        owner = base.name.split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            try:  # its volumes' loop devices first, or the unmount fails
                drop_scratch(base / "mnt")
            except LabError as err:  # one stuck leftover must not block every new scratch
                log(f"stale scratch file system {base} left in place: {err}")
