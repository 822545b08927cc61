"""`snf-events tail`: a live, one-line-per-message view of the stream, for admins.

Reads from a private auto-delete queue bound to everything on the `ganeti` exchange, so
it takes nothing away from the real consumers. `format_line` is pure.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, TextIO

import kombu

from ganeti_ext.consumer import topology
from ganeti_ext.logsetup import mask_text

log = logging.getLogger(__name__)

LOGMSG_WIDTH = 120


def _when(body: Mapping[str, Any], received: float) -> str:
    stamp = body.get("event_time")
    if isinstance(stamp, list) and len(stamp) == 2 and all(isinstance(part, int) for part in stamp):
        seconds = stamp[0] + stamp[1] / 1e6
    else:
        seconds = received
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _one_line(text: str, width: int = LOGMSG_WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def describe(body: Mapping[str, Any]) -> str:
    """The interesting fields of a message, in the order an admin scans them."""
    message_type = str(body.get("type", "?"))
    subject = body.get("instance") or body.get("network") or body.get("cluster") or "-"
    parts = [message_type, str(subject)]
    if message_type == "image-copy-progress":
        progress = body.get("progress")
        parts.append(f"{progress:.1f}%" if isinstance(progress, int | float) else "?%")
    elif message_type == "ganeti-hook":
        parts += [str(body.get("hpath", "?")), str(body.get("operation", "?"))]
        if body.get("status"):
            parts.append(f"status={body['status']}")
    elif message_type.startswith("image-"):
        if body.get("subtype"):
            parts.append(str(body["subtype"]))
        if body.get("task"):
            parts.append(str(body["task"]))
        texts = body.get("messages") or body.get("stderr")
        if isinstance(texts, list):
            texts = " | ".join(str(text) for text in texts)
        if texts:
            parts.append(_one_line(str(texts)))
    else:
        for key in ("operation", "status"):
            if body.get(key):
                parts.append(str(body[key]))
        if body.get("jobId") is not None:
            parts.append(f"job={body['jobId']}")
        if body.get("logmsg"):
            parts.append(_one_line(str(body["logmsg"])))
    return " ".join(parts)


def format_line(raw: bytes | str, routing_key: str, received: float, *, as_json: bool) -> str:
    """One output line for a delivery; undecodable messages are shown, not hidden."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return mask_text(f"{_when({}, received)} UNPARSABLE on {routing_key}: {_one_line(raw)}")
    if as_json:
        return mask_text(json.dumps(body, sort_keys=True, separators=(",", ":")))
    return mask_text(f"{_when(body, received)} {describe(body)}")


def wanted(raw: bytes | str, types: Collection[str]) -> bool:
    """Whether a message passes the --type filter (everything when no filter)."""
    if not types:
        return True
    try:
        body = json.loads(raw)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") in types


def run(
    connection: kombu.Connection,
    out: TextIO,
    *,
    types: Collection[str] = (),
    as_json: bool = False,
    stop: Callable[[], bool] = lambda: False,
    max_messages: int | None = None,
    idle_exit: float | None = None,
    on_ready: Callable[[str], None] = lambda _queue: None,
) -> int:
    """Print messages until stopped; returns how many were printed. `on_ready` gets the
    queue's name once it is bound: from then on nothing published is missed."""
    channel = connection.channel()
    name = topology.queue_name(f"tail-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    queue = topology.tail_queue(name)(channel)
    queue.declare()
    on_ready(name)
    printed = 0

    def on_message(message: Any) -> None:
        nonlocal printed
        if wanted(message.body, types):
            line = format_line(
                message.body,
                message.delivery_info.get("routing_key", ""),
                time.time(),
                as_json=as_json,
            )
            out.write(line + "\n")
            out.flush()
            printed += 1

    idle_since = time.monotonic()
    with kombu.Consumer(channel, queues=[queue], on_message=on_message, no_ack=True):
        while not stop() and (max_messages is None or printed < max_messages):
            try:
                connection.drain_events(timeout=0.5)
                idle_since = time.monotonic()
            except TimeoutError:
                connection.heartbeat_check()
                if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                    break
    return printed
