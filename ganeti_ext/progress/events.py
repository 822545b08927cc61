"""Progress events of an image deployment: normalisation and rate limiting (pure).

The writer (snf-image and its helper) is not trusted: each line is parsed on its own,
only the fields of the types in docs/amqp-contract.md are kept, strings are bounded and masked, and
`instance` / `event_time` are always ours. Accepted input, one JSON object per line:

    {"type": "image-copy-progress", "position": 1048576, "total": 4194304}
    {"type": "image-copy-progress", "progress": 25.0}
    {"type": "image-info", "messages": ["Image size: 2 GiB"]}
    {"type": "image-warning", "messages": ["No swap partition"]}
    {"type": "image-error", "messages": [...]}  or  {"type": "image-error", "stderr": "..."}
    {"type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable"}
    {"subtype": "task-end", "task": "FixPartitionTable"}     (type defaults to image-helper)
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ganeti_ext.amqp import routing
from ganeti_ext.logsetup import MASK, is_secret_name, mask_text
from ganeti_ext.spool import OutgoingMessage

COPY_PROGRESS = "image-copy-progress"
INFO = "image-info"
WARNING = "image-warning"
ERROR = "image-error"
HELPER = "image-helper"
TYPES = (COPY_PROGRESS, INFO, WARNING, ERROR, HELPER)
HELPER_SUBTYPES = ("task-start", "task-end", "warning", "error", "info")
TASK_SUBTYPES = ("task-start", "task-end")

MAX_LINE_BYTES = 64 * 1024
MAX_MESSAGES = 20
MAX_MESSAGE_CHARS = 1024
MAX_STDERR_CHARS = 8 * 1024  # the end of a helper's stderr is the part that explains
MAX_BODY_BYTES = 64 * 1024
_TASK = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")


class Skip(Exception):
    """A line that is not a progress event (logged and skipped)."""


def event_time(now: float) -> list[int]:
    seconds = math.floor(now)
    return [seconds, min(999_999, round((now - seconds) * 1e6))]


def _text(value: object, limit: int, *, keep_end: bool = False) -> str:
    text = mask_text(str(value))
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3) :] if keep_end else text[: limit - 3] + "..."


def _messages(raw: Mapping[str, Any]) -> list[str]:
    value = raw.get("messages", raw.get("message"))
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise Skip(f"messages must be a list of strings, got {type(value).__name__}")
    kept = [_text(item, MAX_MESSAGE_CHARS) for item in value if not isinstance(item, dict | list)]
    return kept[-MAX_MESSAGES:]


def _number(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Skip(f"{key} must be a number, got {value!r}")
    if value < 0:
        raise Skip(f"{key} must not be negative, got {value!r}")
    return value


def normalise(raw: Mapping[str, Any], instance: str, now: float) -> dict[str, Any]:
    """The body (docs/amqp-contract.md) for one writer event; raises Skip when it is not one."""
    message_type = raw.get("type")
    if message_type is None and "subtype" in raw:
        message_type = HELPER
    if message_type not in TYPES:
        raise Skip(f"unknown progress event type {message_type!r}")
    body: dict[str, Any] = {
        "type": message_type,
        "instance": instance,
        "event_time": event_time(now),
    }
    if message_type == COPY_PROGRESS:
        position = _number(raw, "position")
        total = _number(raw, "total")
        progress = _number(raw, "progress")
        if progress is None:
            if position is None or not total:
                raise Skip("copy progress needs progress, or position and total")
            progress = 100.0 * position / total
        body["progress"] = round(min(100.0, float(progress)), 2)
        if position is not None:
            body["position"] = int(position)
        if total is not None:
            body["total"] = int(total)
        return body
    texts = _messages(raw)
    if texts:
        body["messages"] = texts
    stderr = raw.get("stderr")
    if stderr is not None:
        body["stderr"] = _text(stderr, MAX_STDERR_CHARS, keep_end=True)
    if message_type == HELPER:
        subtype = raw.get("subtype")
        if subtype not in HELPER_SUBTYPES:
            raise Skip(f"unknown image-helper subtype {subtype!r}")
        body["subtype"] = subtype
        task = raw.get("task")
        if task is not None or subtype in TASK_SUBTYPES:
            if not isinstance(task, str) or not _TASK.match(task):
                raise Skip(f"{subtype} needs a task name, got {task!r}")
            body["task"] = task
    elif not texts and stderr is None:
        raise Skip(f"{message_type} needs messages or stderr")
    return body


def parse_line(line: bytes, instance: str, now: float) -> dict[str, Any] | None:
    """Normalise one input line; None for a blank line, Skip for anything malformed."""
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Skip("line is not UTF-8") from None
    if not text:
        return None
    try:
        raw = json.loads(text)
    except ValueError as err:
        raise Skip(f"not JSON ({err})") from None
    if not isinstance(raw, dict):
        raise Skip(f"not a JSON object but {type(raw).__name__}")
    # A writer's stray secret keys never leave the node, whatever the type.
    raw = {key: (MASK if is_secret_name(key) else value) for key, value in raw.items()}
    return normalise(raw, instance, now)


def to_message(body: dict[str, Any]) -> OutgoingMessage:
    """The spool message for a normalised body (routing key from the instance name)."""
    encoded = json.dumps(body, separators=(",", ":"))
    if len(encoded) > MAX_BODY_BYTES:  # cannot happen with the field limits above
        raise Skip(f"event of {len(encoded)} bytes exceeds {MAX_BODY_BYTES}")
    return OutgoingMessage(
        routing_key=routing.progress_routing_key(body["instance"]),
        body=body,
        message_id=f"progress-{uuid.uuid4().hex}",
    )


@dataclass
class CopyProgressThrottle:
    """At most one copy-progress event per `interval` seconds, never losing the last one.

    A suppressed event waits as `pending` (a newer one replaces it) and goes out once
    the interval has passed, before any other event (to keep the order), or at EOF.
    """

    interval: float = 1.0
    last_sent: float | None = None
    pending: dict[str, Any] | None = None

    def offer(self, body: dict[str, Any], now: float) -> list[dict[str, Any]]:
        """What to send now, given a new event."""
        if body["type"] != COPY_PROGRESS:
            return [*self.flush(), body]
        if self.last_sent is None or now - self.last_sent >= self.interval:
            self.pending = None
            self.last_sent = now
            return [body]
        self.pending = body
        return []

    def due_in(self, now: float) -> float | None:
        """Seconds until the pending event is due; None when nothing waits."""
        if self.pending is None or self.last_sent is None:
            return None
        return max(0.0, self.last_sent + self.interval - now)

    def poll(self, now: float) -> list[dict[str, Any]]:
        """The pending event, if its time has come."""
        due = self.due_in(now)
        if due is None or due > 0:
            return []
        self.last_sent = now
        return self.flush()

    def flush(self) -> list[dict[str, Any]]:
        pending, self.pending = self.pending, None
        return [] if pending is None else [pending]
