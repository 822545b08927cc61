"""AddSwap: format the swap partition FixPartitionTable made (SWAP property) and add it
to the guest's /etc/fstab by UUID."""

from __future__ import annotations

from ganeti_ext.osdef.tasks import disks
from ganeti_ext.osdef.tasks.context import partition_path

NAME = "AddSwap"
INPUTS = ()


def fstab_with_swap(fstab: str | None, uuid: str) -> str:
    lines = [line for line in (fstab or "").splitlines() if f"UUID={uuid}" not in line]
    lines.append(f"UUID={uuid}\tnone\tswap\tsw\t0\t0")
    return "\n".join(lines) + "\n"


def run(ctx) -> None:
    number = ctx.config.get("swap_partition")
    if not number:
        return
    guest = ctx.require_guest()
    device = partition_path(ctx.disk, int(number))
    ctx.system.run(["mkswap", device])
    uuid = disks.parse_blkid(ctx.system.run(["blkid", "-p", "-o", "export", device]).stdout).get(
        "UUID"
    )
    guest.write_file("/etc/fstab", fstab_with_swap(guest.read_text("/etc/fstab"), uuid))
    ctx.report.info(f"swap on partition {number}")
