"""volume.json: what the store knows about a volume beyond its bytes.

    {"format": 1, "name": ..., "uuid": ..., "cname": ..., "origin": <image/snapshot>|null,
     "metadata": <Ganeti's VOL_METADATA>|null, "opens": {<node>: {"exclusive": bool,
     "since": <ISO 8601>}}, "created": <ISO 8601>}

The size is not recorded: the data file's length is the volume's size, so the two can
never disagree after a crash in the middle of a grow.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.backend import Volume
from ganeti_ext.extstorage.filestore.layout import json_object
from ganeti_ext.fsutil import atomic_write

RECORD_FORMAT = 1


def to_json(volume: Volume, since: dict[str, str] | None = None) -> dict[str, Any]:
    since = since or {}
    return {
        "format": RECORD_FORMAT,
        "name": volume.name,
        "uuid": volume.uuid,
        "cname": volume.cname,
        "origin": volume.origin,
        "metadata": volume.metadata,
        "opens": {
            node: {"exclusive": exclusive, "since": since.get(node, volume.created)}
            for node, exclusive in sorted(volume.opens.items())
        },
        "created": volume.created,
    }


def parse(text: str, size: int, where: str) -> Volume:
    data = json_object(text, where)
    if data.get("format") != RECORD_FORMAT:
        raise ValidationError(f"{where}: not a volume record of format {RECORD_FORMAT}")
    opens = data.get("opens") or {}
    if not isinstance(opens, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("exclusive"), bool)
        for entry in opens.values()
    ):
        raise ValidationError(f"{where}: opens must map node names to {{exclusive, since}}")
    for key in ("name", "created"):
        if not isinstance(data.get(key), str):
            raise ValidationError(f"{where}: {key} must be a string")
    for key in ("uuid", "cname", "origin", "metadata"):
        if data.get(key) is not None and not isinstance(data.get(key), str):
            raise ValidationError(f"{where}: {key} must be a string or null")
    return Volume(
        name=data["name"],
        size=size,
        origin=data.get("origin"),
        uuid=data.get("uuid"),
        cname=data.get("cname"),
        metadata=data.get("metadata"),
        opens={node: entry["exclusive"] for node, entry in opens.items()},
        created=data["created"],
    )


def open_times(text: str) -> dict[str, str]:
    """When each node opened the volume (kept across rewrites of the record)."""
    try:
        opens = json.loads(text).get("opens") or {}
        return {node: str(entry.get("since", "")) for node, entry in opens.items()}
    except (ValueError, AttributeError):
        return {}


def write(path: Path, volume: Volume, since: dict[str, str] | None = None) -> None:
    payload = json.dumps(to_json(volume, since), indent=1, sort_keys=True) + "\n"
    atomic_write(path, payload.encode(), mode=0o600)
