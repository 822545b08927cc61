"""The instance disk's partition table and file systems, read with the helper's tools.

Pure parsers of `sfdisk --json` and `blkid -o export` output (tested on captured data),
and the choice of the root partition: the ROOT_PARTITION property if given, else the one
Linux file system partition, else the one holding /etc/os-release (probed read-only).
"""

from __future__ import annotations

import json

from ganeti_ext.osdef.tasks.context import TaskError, partition_path
from ganeti_ext.osdef.tasks.guest import Guest

LINUX_FILE_SYSTEMS = ("ext2", "ext3", "ext4", "xfs", "btrfs")
# Partition types that say "not Linux": refuse such images rather than guess.
FOREIGN_FILE_SYSTEMS = ("ntfs", "vfat", "exfat", "ufs", "zfs_member", "hfsplus")


class Partition:
    __slots__ = ("number", "size", "start", "type")

    def __init__(self, number: int, start: int, size: int, type_: str) -> None:
        self.number, self.start, self.size, self.type = number, start, size, type_

    @property
    def end(self) -> int:
        return self.start + self.size


class Table:
    __slots__ = ("label", "last_lba", "partitions", "sector_size")

    def __init__(self, label, sector_size, partitions, last_lba) -> None:
        self.label, self.sector_size = label, sector_size
        self.partitions, self.last_lba = partitions, last_lba


def parse_sfdisk_json(text: str, disk: str) -> Table:
    try:
        table = json.loads(text)["partitiontable"]
        label = table["label"]
        sector = int(table.get("sectorsize", 512))
        parts = []
        for entry in table.get("partitions", []):
            node = entry["node"]
            number = int(node[len(disk) :].lstrip("p"))
            parts.append(Partition(number, int(entry["start"]), int(entry["size"]), entry["type"]))
        last_lba = int(table["lastlba"]) if "lastlba" in table else None
    except (ValueError, KeyError, TypeError) as err:
        raise TaskError(f"the partition table of {disk} is unreadable ({err})") from None
    if label not in ("dos", "gpt"):
        raise TaskError(f"partition table of type {label} is not supported (dos or gpt)")
    return Table(label, sector, sorted(parts, key=lambda p: p.start), last_lba)


def parse_blkid(text: str) -> dict:
    """`blkid -o export` of one device: {"TYPE": "ext4", "UUID": ..., ...}."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def read_table(ctx) -> Table:
    proc = ctx.system.run(["sfdisk", "--json", ctx.disk], ok=(0, 1))
    if proc.returncode != 0 or not proc.stdout.strip():
        raise TaskError(f"{ctx.disk} has no readable partition table (corrupt or missing)")
    return parse_sfdisk_json(proc.stdout, ctx.disk)


def fs_type(ctx, device: str) -> str | None:
    proc = ctx.system.run(["blkid", "-p", "-o", "export", device], ok=(0, 2))
    return parse_blkid(proc.stdout).get("TYPE")


MODULES_FILE = "/lib/modules/fs-modules.json"  # written by the helper's builder


def load_fs_module(ctx, fs: str) -> None:
    """insmod what file system `fs` needs (xfs, btrfs), once; ext4 is built in."""
    loaded = ctx.config.setdefault("_loaded_modules", [])
    try:
        with open(MODULES_FILE, encoding="utf-8") as stream:
            needed = json.load(stream).get(fs, [])
    except FileNotFoundError:
        return  # not in a helper: the running kernel has what it has
    for module in needed:
        if module not in loaded:
            ctx.system.run(["insmod", f"/lib/modules/{module}.ko"], ok=(0, 1))
            loaded.append(module)


def find_root(ctx) -> tuple[str, str]:
    """(partition device, file system type) of the image's root; cached in the context."""
    if ctx.root_partition:
        return ctx.root_partition, ctx.root_fs
    table = read_table(ctx)
    types = {p.number: fs_type(ctx, partition_path(ctx.disk, p.number)) for p in table.partitions}
    wanted = ctx.property("ROOT_PARTITION").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) not in types:
            raise TaskError(f"image property ROOT_PARTITION={wanted}: no such partition")
        number = int(wanted)
    else:
        linux = [n for n, t in types.items() if t in LINUX_FILE_SYSTEMS]
        foreign = sorted({t for t in types.values() if t in FOREIGN_FILE_SYSTEMS})
        if not linux:
            found = ", ".join(t for t in types.values() if t) or "none"
            raise TaskError(
                f"no Linux root file system on the disk (file systems found: {found})"
                + (": Windows and BSD images are not supported yet" if foreign else "")
            )
        number = linux[0] if len(linux) == 1 else probe_root(ctx, linux, types)
    fs = types[number]
    if fs not in LINUX_FILE_SYSTEMS:
        raise TaskError(
            f"partition {number} holds {fs or 'no file system'}, not ext4, xfs or btrfs"
        )
    load_fs_module(ctx, fs)
    ctx.root_partition, ctx.root_fs = partition_path(ctx.disk, number), fs
    return ctx.root_partition, fs


def probe_root(ctx, candidates: list, types: dict) -> int:
    """The candidate holding /etc/os-release (each mounted read-only, in turn)."""
    probe = ctx.mountpoint + ".probe"
    ctx.system.run(["mkdir", "-p", probe])
    for number in candidates:
        load_fs_module(ctx, types[number])
        device = partition_path(ctx.disk, number)
        options = "ro,nosuid,nodev,noexec" + (",norecovery" if types[number] == "xfs" else "")
        mounted = ctx.system.run(
            ["mount", "-t", types[number], "-o", options, device, probe], ok=(0, 1, 32)
        )
        if mounted.returncode:
            continue
        guest = Guest(probe)
        try:
            found = any(
                guest.exists(path)
                for path in ("/etc/os-release", "/usr/lib/os-release", "/etc/fstab")
            )
        finally:
            guest.close()
            ctx.system.run(["umount", probe], ok=(0, 1, 32))
        if found:
            return number
    raise TaskError("several Linux file systems and none holds /etc/os-release: set ROOT_PARTITION")
