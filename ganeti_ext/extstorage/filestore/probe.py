"""Does this directory's file system really share extents? Ask it, with two tiny files.

The file system type is not enough: XFS made without reflink=1 (the default before
xfsprogs 5.1) is still "xfs". `archipelago store init` refuses such a store up front
rather than at the first snapshot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore.reflink import NO_REFLINK_ERRNOS, clone_file


def probe_reflink(directory: Path) -> None:
    with tempfile.TemporaryDirectory(prefix=".archipelago-probe-", dir=directory) as tmp:
        source, target = Path(tmp, "a"), Path(tmp, "b")
        source.write_bytes(b"\1" * 4096)
        with open(source, "rb") as src, open(target, "wb") as dst:
            try:
                clone_file(src.fileno(), dst.fileno())
            except OSError as err:
                if err.errno in NO_REFLINK_ERRNOS:
                    raise ValidationError(
                        f"{directory}: its file system cannot share extents between files "
                        f"({os.strerror(err.errno)}); make it with `mkfs.xfs -m reflink=1` "
                        "or use btrfs"
                    ) from None
                raise
