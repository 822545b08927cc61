"""UmountImage: flush and unmount the root file system; the disk is ready to boot."""

from __future__ import annotations

NAME = "UmountImage"
INPUTS = ()


def run(ctx) -> None:
    if ctx.guest is None:
        return
    ctx.guest.close()
    ctx.guest = None
    ctx.system.run(["sync"])
    ctx.system.run(["umount", ctx.mountpoint])
