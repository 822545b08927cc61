"""MountImage: mount the root file system where the other tasks edit it.

nosuid, nodev and noexec: nothing of the image ever runs in the helper.
"""

from __future__ import annotations

from ganeti_ext.osdef.tasks import disks
from ganeti_ext.osdef.tasks.guest import Guest

NAME = "MountImage"
INPUTS = ()


def run(ctx) -> None:
    device, fs = disks.find_root(ctx)
    ctx.system.run(["mkdir", "-p", ctx.mountpoint])
    ctx.system.run(["mount", "-t", fs, "-o", "rw,nosuid,nodev,noexec", device, ctx.mountpoint])
    ctx.guest = Guest(ctx.mountpoint)
