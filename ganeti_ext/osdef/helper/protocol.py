"""The helper's line protocol, read as hostile input (pure).

The helper is a VM working on an untrusted image: whatever it prints is bounded here.
Lines longer than MAX_LINE bytes are cut, more than MAX_LINES lines is a flood that ends
the run, non-printable characters are dropped, task names must be known ones, and the
outcome is `DONE` or `ERROR <text>` exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ganeti_ext.osdef import tasks

MAX_LINE = 512
MAX_LINES = 200
MAX_TEXT = 300


@dataclass(frozen=True)
class Event:
    kind: str  # task-start, task-end, warning, info, done, error
    task: str | None = None
    text: str = ""


class ProtocolError(Exception):
    """The helper broke the protocol (flood, garbage): the run is abandoned."""


@dataclass
class LineReader:
    buffer: bytes = b""
    lines: int = 0
    events: list[Event] = field(default_factory=list)
    outcome: Event | None = None
    ignored: int = 0
    discarding: bool = False  # inside an overlong line whose start was already read

    def feed(self, data: bytes) -> list[Event]:
        """Parse what arrived; returns the new events. Raises ProtocolError on a flood."""
        self.buffer += data
        new: list[Event] = []
        while True:
            newline = self.buffer.find(b"\n")
            if newline < 0:
                if len(self.buffer) > MAX_LINE:
                    line, self.buffer = self.buffer[:MAX_LINE], b""
                    if not self.discarding:
                        new += self._line(line)
                    self.discarding = True
                break
            line, self.buffer = self.buffer[:newline], self.buffer[newline + 1 :]
            if self.discarding:
                self.discarding = False
                continue
            new += self._line(line[:MAX_LINE])
        self.events += new
        return new

    def _line(self, raw: bytes) -> list[Event]:
        self.lines += 1
        if self.lines > MAX_LINES:
            raise ProtocolError(f"the helper printed more than {MAX_LINES} lines")
        text = "".join(ch for ch in raw.decode("ascii", "replace") if ch.isprintable()).strip()
        word, _, rest = text.partition(" ")
        rest = rest.strip()[:MAX_TEXT]
        if word in ("TASK_START", "TASK_END"):
            if rest not in tasks.ORDER:
                self.ignored += 1
                return []
            return [Event("task-start" if word == "TASK_START" else "task-end", rest)]
        if word in ("WARNING", "INFO"):
            return [Event(word.lower(), None, rest)]
        if word in ("DONE", "ERROR"):
            if self.outcome is not None:
                raise ProtocolError("the helper reported its outcome twice")
            self.outcome = Event("done" if word == "DONE" else "error", None, rest)
            return [self.outcome]
        self.ignored += 1
        return []
