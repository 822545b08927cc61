"""The JSON Schemas of the messages eventd publishes (ganeti_ext/events/schemas/*.v1.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
VERSION = 1


def schema_path(message_type: str, version: int = VERSION) -> Path:
    return SCHEMA_DIR / f"{message_type}.v{version}.json"


def load_schema(message_type: str, version: int = VERSION) -> dict[str, Any]:
    """The schema of `message_type` (e.g. "ganeti-op-status"); FileNotFoundError if none."""
    return json.loads(schema_path(message_type, version).read_text())


def message_types() -> list[str]:
    """Every message type with a schema."""
    return sorted(path.name.split(".v", 1)[0] for path in SCHEMA_DIR.glob("*.v*.json"))
