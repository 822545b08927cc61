"""FilesystemResizeUnmounted: check an ext2/3/4 root and grow it to its partition.

A file system that e2fsck cannot make clean is an error (the image is dirty or
corrupt); xfs and btrfs grow once mounted (FilesystemResizeMounted).
"""

from __future__ import annotations

from ganeti_ext.osdef.tasks import disks
from ganeti_ext.osdef.tasks.context import TaskError

NAME = "FilesystemResizeUnmounted"
INPUTS = ()
E2FSCK_FIXED = (0, 1)  # 0 clean, 1 errors corrected


def run(ctx) -> None:
    device, fs = disks.find_root(ctx)
    if not fs.startswith("ext"):
        return
    checked = ctx.system.run(["e2fsck", "-f", "-p", device], ok=tuple(range(256)))
    if checked.returncode not in E2FSCK_FIXED:
        reason = " | ".join(
            checked.stdout.strip().splitlines()[-2:] + checked.stderr.strip().splitlines()[-2:]
        )
        raise TaskError(
            f"the root file system ({fs}) is dirty or corrupt and e2fsck -p cannot fix it: {reason}"
        )
    ctx.system.run(["resize2fs", device])
