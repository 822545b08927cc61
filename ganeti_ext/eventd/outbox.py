"""eventd's own outbox: the spool's one-message files, plus batch files of many messages.

Creating a file is what a message costs most on a busy disk (0.2-0.7 ms here), so when
eventd spools several messages at once (a burst of job changes, a catch-up) it writes
them as one batch file: `<time_ns:020d>-<pid>-<counter:06d>.msgs`, one encoded message
per line (spool.encode never emits a raw newline), written to a temporary name, fsynced,
renamed into place and the directory fsynced, like a one-message file. A batch file is
named like the other files of the outbox and the hand-over spool, so the drainer keeps
one global time order; it leaves the outbox only once every message in it is confirmed.
"""

from __future__ import annotations

import re
from pathlib import Path

from ganeti_ext.spool import (
    MAX_MESSAGE_BYTES,
    SUFFIX,
    OutgoingMessage,
    Spool,
    SpoolError,
    _next_name,
    decode,
    encode,
    name_order,
    read_capped,
)

BATCH_SUFFIX = ".msgs"
MAX_BATCH_FILE_BYTES = 256 * 1024 * 1024  # far above any batch we write

_BATCH_NAME = re.compile(r"^(\d{20})-(\d+)-(\d+)\.msgs\Z")


def file_order(name: str) -> tuple[int, int, int] | None:
    """The sort key of a one-message or batch file's name (None: not a message file)."""
    key = name_order(name)
    if key is not None:
        return key
    match = _BATCH_NAME.match(name)
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


def is_batch(path: Path) -> bool:
    return path.name.endswith(BATCH_SUFFIX)


class Outbox(Spool):
    """A Spool that stores several messages put together as one batch file."""

    order = staticmethod(file_order)  # message and batch files, oldest first

    def put_many(self, messages: list[OutgoingMessage]) -> list[Path]:
        """Store `messages` durably, in order, as one file; return [that file]."""
        if not messages:
            return []
        if len(messages) == 1:
            return [self.put(messages[0])]
        data = b"".join(encode(message) + b"\n" for message in messages)
        name = _next_name()[: -len(SUFFIX)] + BATCH_SUFFIX
        return [self._store(name, data)]

    def load_all(self, path: Path) -> list[OutgoingMessage]:
        """The messages in a one-message or batch file; SpoolError if it is corrupt."""
        if not is_batch(path):
            return [self.load(path)]
        data = read_capped(path, MAX_BATCH_FILE_BYTES)
        if not data.endswith(b"\n"):
            raise SpoolError(f"{path}: truncated batch file")
        lines = data[:-1].split(b"\n")
        if any(len(line) > MAX_MESSAGE_BYTES for line in lines):
            raise SpoolError(f"{path}: a message larger than {MAX_MESSAGE_BYTES} bytes")
        return [decode(line, f"{path} line {number}") for number, line in enumerate(lines, 1)]


def load_messages(spool: Spool, path: Path) -> list[OutgoingMessage]:
    """The messages in `path` of `spool` (an Outbox's batch file holds several)."""
    if isinstance(spool, Outbox):
        return spool.load_all(path)
    return [spool.load(path)]
