"""Maps: an image or snapshot as its size and the ordered names of its blocks.

    {"format": 1, "kind": "image" | "snapshot", "name": ..., "size": <bytes>,
     "block_size": <bytes>, "blocks": [<sha256> | null, ...] | null,
     "created": <ISO 8601 UTC>, "source": {...}}

`null` in `blocks` is an all-zero block (never stored). `blocks` itself is null for a
snapshot whose blocks are not hashed yet (its bytes are in the origin's data file
meanwhile). `source` says where an image came from (file or URL without credentials,
its SHA-256 and format) or which volume a snapshot froze.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.filestore.layout import check_name, is_block_name, json_object
from ganeti_ext.fsutil import atomic_write

MAP_FORMAT = 1
KINDS = ("image", "snapshot")


@dataclass(frozen=True)
class Map:
    kind: str
    name: str
    size: int
    block_size: int
    blocks: tuple[str | None, ...] | None
    created: str = field(default_factory=lambda: now_iso())
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def digested(self) -> bool:
        return self.blocks is not None

    @property
    def block_count(self) -> int:
        return (self.size + self.block_size - 1) // self.block_size

    def referenced(self) -> set[str]:
        return {digest for digest in self.blocks or () if digest is not None}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MAP_FORMAT,
            "kind": self.kind,
            "name": self.name,
            "size": self.size,
            "block_size": self.block_size,
            "blocks": None if self.blocks is None else list(self.blocks),
            "created": self.created,
            "source": self.source,
        }


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse(text: str, where: str) -> Map:
    """A map from its JSON text, every field checked; errors name `where` and the field."""
    data = json_object(text, where)
    if data.get("format") != MAP_FORMAT:
        raise ValidationError(f"{where}: map format {data.get('format')!r} is not {MAP_FORMAT}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise ValidationError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    name = data.get("name")
    check_name(kind, name)
    size, block_size = data.get("size"), data.get("block_size")
    for key, value in (("size", size), ("block_size", block_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValidationError(f"{where}: {key} must be a non-negative integer")
    if block_size == 0:
        raise ValidationError(f"{where}: block_size must be positive")
    blocks = data.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list):
            raise ValidationError(f"{where}: blocks must be a list or null")
        expected = (size + block_size - 1) // block_size
        if len(blocks) != expected:
            raise ValidationError(
                f"{where}: {len(blocks)} blocks listed, {expected} expected for {size} bytes"
            )
        for index, digest in enumerate(blocks):
            if digest is not None and not (isinstance(digest, str) and is_block_name(digest)):
                raise ValidationError(f"{where}: block {index} is not a SHA-256 name or null")
        blocks = tuple(blocks)
    elif kind == "image":
        raise ValidationError(f"{where}: an image's map must list its blocks")
    created, source = data.get("created"), data.get("source", {})
    if not isinstance(created, str) or not isinstance(source, dict):
        raise ValidationError(f"{where}: created must be a string and source an object")
    return Map(kind, name, size, block_size, blocks, created, source)


def read(path: Path) -> Map:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path}: not UTF-8 text") from None
    return parse(text, str(path))


def write(path: Path, store_map: Map) -> None:
    """Write a map atomically and durably, read-only (maps never change in place)."""
    payload = json.dumps(store_map.to_json(), separators=(",", ":")) + "\n"
    atomic_write(path, payload.encode(), mode=0o444)
