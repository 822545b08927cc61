"""Disk images the lab builds itself, without mounting anything: mkfs -d and sfdisk on files."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from labkit import settings
from labkit.sh import run

IMAGES_DIR = settings.CACHE_DIR / "images"
DEMO_TEXT = "This disk is a zero-copy clone of image {image}, made by archipelago.\n"
PARTITION_START = 1024 * 1024


def partitioned_ext4(path: Path, size_mib: int, root: Path, label: str = "dos") -> None:
    """A disk image with one Linux partition at 1 MiB holding an ext4 made from `root`."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    run(["truncate", "-s", f"{size_mib}M", tmp])
    layout = f"label: {label}\nstart=2048, type={'83' if label == 'dos' else 'L'}\n"
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", tmp], input=layout)
    run(
        [
            "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root",
            "-E", f"offset={PARTITION_START}", "-d", root, tmp, f"{size_mib - 2}M",
        ]
    )  # fmt: skip
    tmp.rename(path)


def demo_image() -> tuple[Path, str]:
    """The demo's disk image (cached) and its SHA-256."""
    path = IMAGES_DIR / f"{settings.DEMO_IMAGE}.raw"
    if not path.exists():
        IMAGES_DIR.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=IMAGES_DIR) as tmp:
            root = Path(tmp)
            (root / "hello.txt").write_text(DEMO_TEXT.format(image=settings.DEMO_IMAGE))
            partitioned_ext4(path, 32, root)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def import_demo_image() -> str:
    """Import the demo image into the store (a no-op when it is there); returns its name."""
    path, digest = demo_image()
    run(
        ["archipelago", "image", "import", path, "--name", settings.DEMO_IMAGE, "--sha256", digest],
        timeout=300,
    )
    return settings.DEMO_IMAGE
