"""Every progress message snf-progress-monitor builds matches its published JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest

from ganeti_ext.events.schema import load_schema
from ganeti_ext.progress.events import normalise

NOW = 1795240000.25

EVENTS = [
    {"type": "image-copy-progress", "position": 1048576, "total": 4194304},
    {"type": "image-copy-progress", "progress": 25.0},
    {"type": "image-info", "messages": ["Image size: 2 GiB", "Format: diskdump"]},
    {"type": "image-error", "stderr": "sfdisk: cannot open /dev/vda"},
    {"type": "image-error", "messages": ["helper VM timed out"]},
    {"type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable"},
    {"type": "image-helper", "subtype": "task-end", "task": "FixPartitionTable"},
    {"subtype": "warning", "messages": ["no swap partition"]},
    {"type": "image-helper", "subtype": "error", "stderr": "e2fsck: bad superblock"},
]


@pytest.mark.parametrize("raw", EVENTS, ids=lambda raw: f"{raw.get('type')}-{raw.get('subtype')}")
def test_normalised_event_validates(raw):
    body = normalise(raw, "snf-42", NOW)
    jsonschema.validate(body, load_schema(body["type"]))


@pytest.mark.parametrize(
    "body",
    [
        {"type": "image-info", "instance": "snf-42", "event_time": [1, 0]},  # nothing to say
        {"type": "image-helper", "instance": "snf-42", "event_time": [1, 0], "subtype": "task-end"},
        {
            "type": "image-copy-progress",
            "instance": "snf-42",
            "event_time": [1, 0],
            "progress": 101,
        },
        {"type": "image-copy-progress", "instance": "", "event_time": [1, 0], "progress": 1},
    ],
    ids=["info-empty", "task-without-name", "over-100", "no-instance"],
)
def test_schemas_reject_malformed_bodies(body):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, load_schema(body["type"]))
