"""FilesystemResizeMounted: grow an xfs or btrfs root to its partition (they grow mounted)."""

from __future__ import annotations

from ganeti_ext.osdef.tasks import disks

NAME = "FilesystemResizeMounted"
INPUTS = ()


def run(ctx) -> None:
    _, fs = disks.find_root(ctx)
    ctx.require_guest()
    if fs == "xfs":
        ctx.system.run(["xfs_growfs", ctx.mountpoint])
    elif fs == "btrfs":
        ctx.system.run(["btrfs", "filesystem", "resize", "max", ctx.mountpoint])
