"""A durable on-disk queue of messages waiting for the AMQP broker (outbox and hand-over spool).

Writers (eventd itself, Ganeti hooks, the progress monitor) `put` a message and move on:
nothing here talks to the broker, so a writer never waits for it. eventd drains the
directory in name order, publishes each message with confirms and only then calls `done`.

Each message is one file, written to a hidden temporary name, fsynced, renamed into place
and the directory fsynced, so after a crash a message file is either complete or absent.
Names sort by creation time: `<time_ns:020d>-<pid>-<counter:06d>.msg`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganeti_ext.errors import GanetiExtError
from ganeti_ext.fsutil import atomic_write, sync_directory

SUFFIX = ".msg"
BAD_DIR = "bad"
FORMAT_VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # anything bigger is not a message we wrote

_NAME = re.compile(r"^(\d{20})-(\d+)-(\d+)\.msg\Z")
_counter = itertools.count()
_lock = threading.Lock()
_last_ns = 0


class SpoolError(GanetiExtError):
    """A spool file is unreadable or not a message (the caller quarantines it)."""


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready for the broker."""

    routing_key: str
    body: dict[str, Any]  # JSON-serialisable, already secret-free
    message_id: str  # the dedup key; identical re-sends carry the same id


def encode(message: OutgoingMessage) -> bytes:
    """The file content for `message`; sorted keys so a rebuilt message is byte-identical."""
    return json.dumps(
        {
            "v": FORMAT_VERSION,
            "routing_key": message.routing_key,
            "message_id": message.message_id,
            "body": message.body,
        },
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    ).encode()


def decode(data: bytes, where: str = "<bytes>") -> OutgoingMessage:
    """The message in a spool file's content; SpoolError if it is not one."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, ValueError) as err:
        raise SpoolError(f"{where}: not JSON ({err})") from None
    if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION:
        raise SpoolError(f"{where}: not a version {FORMAT_VERSION} spool message")
    routing_key = record.get("routing_key")
    message_id = record.get("message_id")
    body = record.get("body")
    if not isinstance(routing_key, str) or not routing_key:
        raise SpoolError(f"{where}: missing routing_key")
    if not isinstance(message_id, str) or not message_id:
        raise SpoolError(f"{where}: missing message_id")
    if not isinstance(body, dict):
        raise SpoolError(f"{where}: body is not a JSON object")
    return OutgoingMessage(routing_key=routing_key, body=body, message_id=message_id)


def _next_name() -> str:
    global _last_ns
    with _lock:
        # Never go backwards within a process (clock steps), so our own messages keep
        # their order even if the wall clock does not.
        now = max(time.time_ns(), _last_ns + 1)
        _last_ns = now
        return f"{now:020d}-{os.getpid()}-{next(_counter):06d}{SUFFIX}"


def name_order(name: str) -> tuple[int, int, int] | None:
    match = _NAME.match(name)
    if match is None:
        return None
    return (int(match.group(1)), int(match.group(2)), int(match.group(3)))


def read_capped(path: Path, limit: int) -> bytes:
    """The whole file, if it holds at most `limit` bytes; SpoolError otherwise (a spool
    file is never trusted to be small) or when it cannot be read."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(limit + 1)
    except OSError as err:
        raise SpoolError(f"{path}: cannot read: {err.strerror}") from None
    if len(data) > limit:
        raise SpoolError(f"{path}: larger than {limit} bytes")
    return data


class Spool:
    """A directory of messages waiting for the broker: durable, ordered by name."""

    def __init__(self, directory: Path | str, *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self._fsync = fsync

    def __repr__(self) -> str:
        return f"Spool({str(self.directory)!r})"

    def put(self, message: OutgoingMessage) -> Path:
        """Store `message` durably and return its file; safe from many processes at once."""
        return self._store(_next_name(), encode(message))

    def _store(self, name: str, data: bytes) -> Path:
        """One durable file of this spool (SpoolError naming the directory on failure)."""
        final = self.directory / name
        try:
            self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            atomic_write(final, data, mode=0o640, fsync=self._fsync)
        except OSError as err:
            raise SpoolError(f"cannot write to spool {self.directory}: {err.strerror}") from None
        return final

    def put_many(self, messages: list[OutgoingMessage]) -> list[Path]:
        """Store several messages with one file-system flush (for catch-up bursts).

        Same guarantee as `put` once it returns, at the cost of one syncfs instead of
        two fsyncs per message.
        """
        if not messages:
            return []
        batch = Spool(self.directory, fsync=False)
        paths = [batch.put(message) for message in messages]
        if self._fsync:
            try:
                _syncfs(self.directory)
            except OSError as err:
                raise SpoolError(f"cannot flush spool {self.directory}: {err.strerror}") from None
        return paths

    # Which files are messages, and their order (a subclass may store more kinds).
    order = staticmethod(name_order)

    def pending(self) -> list[Path]:
        """Message files, oldest first; temporary files and anything else are ignored."""
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        keyed = [(key, name) for name in entries if (key := self.order(name)) is not None]
        keyed.sort()
        return [self.directory / name for _, name in keyed]

    def load(self, path: Path) -> OutgoingMessage:
        """The message in `path`; SpoolError if the file is corrupt (quarantine it)."""
        return decode(read_capped(path, MAX_MESSAGE_BYTES), str(path))

    def done(self, path: Path) -> None:
        """Forget a message the broker confirmed.

        Not fsynced: if the removal is lost in a crash, the message is sent again with
        the same message_id, which consumers de-duplicate.
        """
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def quarantine(self, path: Path, reason: str) -> None:
        """Move a corrupt message to <dir>/bad/, with the reason beside it."""
        bad = self.directory / BAD_DIR
        bad.mkdir(mode=0o750, exist_ok=True)
        target = bad / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:
            return
        (bad / f"{path.name}.reason").write_text(reason.rstrip("\n") + "\n")
        if self._fsync:
            self._sync_directory()

    def count(self) -> int:
        """How many messages wait (for status output and tests)."""
        return len(self.pending())

    def _sync_directory(self) -> None:
        sync_directory(self.directory)


def _syncfs(directory: Path) -> None:
    """Flush the file system holding `directory` (data and directory entries)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if libc.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)
