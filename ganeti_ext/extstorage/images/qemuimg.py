"""qemu-img command lines for decoding a qcow2 image, and a parser of its `info` (pure).

qemu-img is handed the image through a `json:` specification with `"backing": null`,
so even an image whose header check (formats.parse_qcow2_header) missed a backing file
cannot make it open one. Output is raw and sparse (-S: zero runs become holes).
"""

from __future__ import annotations

import json
from pathlib import Path

from ganeti_ext.errors import ValidationError

QEMU_IMG = "qemu-img"


def image_spec(path: Path) -> str:
    return "json:" + json.dumps(
        {"driver": "qcow2", "backing": None, "file": {"driver": "file", "filename": str(path)}}
    )


def info_argv(path: Path) -> list[str]:
    return [QEMU_IMG, "info", "--output=json", image_spec(path)]


def convert_argv(path: Path, target: Path) -> list[str]:
    return [QEMU_IMG, "convert", "-q", "-O", "raw", "-S", "64k", image_spec(path), str(target)]


def write_argv(path: Path, disk: str) -> list[str]:
    """Decode onto an existing disk (-n: do not create it); zero runs as write-zeroes."""
    return [QEMU_IMG, "convert", "-q", "-n", "-O", "raw", "-S", "64k", image_spec(path), disk]


def parse_info(text: str, description: str) -> int:
    """The virtual size from `qemu-img info --output=json`, after the safety checks."""
    try:
        info = json.loads(text)
        size = info["virtual-size"]
        specific = info.get("format-specific", {}).get("data", {})
    except (ValueError, KeyError, AttributeError, TypeError):
        raise ValidationError(f"{description}: qemu-img info gave no usable answer") from None
    if info.get("format") != "qcow2":
        raise ValidationError(f"{description}: qemu-img does not see a qcow2 image")
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ValidationError(f"{description}: qcow2 image with a backing file refused")
    if specific.get("data-file"):
        raise ValidationError(f"{description}: qcow2 image with an external data file refused")
    if specific.get("corrupt"):
        raise ValidationError(f"{description}: qcow2 image is marked corrupt")
    if not isinstance(size, int) or size <= 0:
        raise ValidationError(f"{description}: qcow2 image has no valid virtual size")
    return size
