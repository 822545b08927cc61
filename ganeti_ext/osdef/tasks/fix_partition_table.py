"""FixPartitionTable: grow the root partition to the end of the (bigger) disk.

A disk is usually bigger than the image written or cloned onto it. On GPT the backup
header moves to the disk's end first. Only the root partition grows, and only when it is
the last one; otherwise the image keeps its layout (with a warning). With the SWAP
property (`<partition number>:<size in MiB>`, as upstream) the last `size` MiB become a
swap partition, which AddSwap formats. msdos and GPT.
"""

from __future__ import annotations

from ganeti_ext.osdef.tasks import disks
from ganeti_ext.osdef.tasks.context import TaskError

NAME = "FixPartitionTable"
INPUTS = ()
ALIGN = 2048  # sectors: 1 MiB with 512-byte sectors


def swap_request(value: str) -> tuple[int, int] | None:
    """(partition number, size in MiB) from the SWAP property, None when unset."""
    if not value.strip():
        return None
    number, sep, size = value.strip().partition(":")
    if not sep or not number.isdigit() or not size.isdigit() or int(size) == 0:
        raise TaskError(f"image property SWAP={value}: expected <partition>:<size in MiB>")
    return int(number), int(size)


def run(ctx) -> None:
    root, _ = disks.find_root(ctx)
    table = disks.read_table(ctx)
    if table.label == "gpt":
        ctx.system.run(
            ["sfdisk", "--no-reread", "--no-tell-kernel", "--relocate", "gpt-bak-std", ctx.disk]
        )
        table = disks.read_table(ctx)
    number = int(root[len(ctx.disk) :].lstrip("p"))
    last = table.partitions[-1]
    if last.number != number:
        ctx.report.warning(f"the root partition ({number}) is not the last one: not grown")
        return
    swap = swap_request(ctx.property("SWAP"))
    end = _usable_end(ctx, table)  # first sector past the usable area
    if swap is not None:
        swap_sectors = swap[1] * 1024 * 1024 // table.sector_size
        root_end = (end - swap_sectors) // ALIGN * ALIGN
    else:
        root_end = end
    if root_end < last.end:
        raise TaskError("the disk is too small for the image's root partition (and swap)")
    size = "+" if swap is None else str(root_end - last.start)
    ctx.system.run(
        ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "-N", str(number), ctx.disk],
        input=f", {size}\n",
    )
    if swap is not None:
        ctx.system.run(
            ["sfdisk", "--no-reread", "--no-tell-kernel", "-q", "--append", ctx.disk],
            input=f"start={root_end}, type=S\n",
        )
        added = disks.read_table(ctx).partitions[-1].number
        if added != swap[0]:
            ctx.report.warning(f"the swap partition is number {added}, not {swap[0]}")
        ctx.config["swap_partition"] = added
    grown = next(p for p in disks.read_table(ctx).partitions if p.number == number)
    ctx.system.run(["blockdev", "--rereadpt", ctx.disk])
    if grown.size > last.size:
        added_mib = (grown.size - last.size) * table.sector_size // (1024 * 1024)
        ctx.report.info(f"partition {number} grown by {added_mib} MiB")


def _usable_end(ctx, table) -> int:
    if table.label == "gpt" and table.last_lba is not None:
        return table.last_lba + 1
    size = int(ctx.system.run(["blockdev", "--getsz", ctx.disk]).stdout.strip())  # 512-byte units
    return size * 512 // table.sector_size
