"""snf-progress-monitor: progress events on stdin -> eventd's hand-over spool.

The writer (an image deployment) must never stall or die because of us, so stdin is
read without pause until EOF whatever happens: a malformed line is logged and skipped,
an over-long line is cut off and skipped, a spool that cannot be written is logged and
the events are dropped (the deployment matters more than its progress bar), and a
missing instance name still drains stdin. The exit status tells what was lost:
0 everything spooled, 1 some events could not be spooled, 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from ganeti_ext import cli, logsetup, paths
from ganeti_ext.amqp import routing
from ganeti_ext.errors import GanetiExtError, ValidationError
from ganeti_ext.eventd import config as eventd_config
from ganeti_ext.progress import events
from ganeti_ext.spool import OutgoingMessage, Spool

PROG = "snf-progress-monitor"
EXIT_LOST = 1
EXIT_USAGE = 2
READ_CHUNK = 64 * 1024
_LOG_EVERY = 100  # repeated spool failures are logged once per this many

log = logging.getLogger(PROG)


class Sink(Protocol):
    def put(self, message: OutgoingMessage) -> Path: ...


class LineSplitter:
    """Splits a byte stream into lines, cutting off any line longer than `limit`.

    Yields (line, overlong); an overlong line is reported once with its first bytes,
    and the rest of it is discarded as it arrives, so memory stays bounded.
    """

    def __init__(self, limit: int = events.MAX_LINE_BYTES) -> None:
        self.limit = limit
        self._buffer = b""
        self._discarding = False

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, bool]]:
        self._buffer += chunk
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.limit:
                    if not self._discarding:
                        yield self._buffer[:200], True
                    self._discarding = True
                    self._buffer = b""
                return
            line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
            if self._discarding:
                self._discarding = False  # the tail of an over-long line
                continue
            if len(line) > self.limit:
                yield line[:200], True
                continue
            yield line, False

    def finish(self) -> Iterator[tuple[bytes, bool]]:
        """The last line when the stream did not end with a newline."""
        rest, self._buffer = self._buffer, b""
        if rest and not self._discarding:
            yield rest, False
        self._discarding = False


@dataclass
class Monitor:
    """Turns lines into spooled messages for one instance."""

    instance: str | None
    sink: Sink | None
    clock: Callable[[], float] = time.time
    throttle: events.CopyProgressThrottle = field(default_factory=events.CopyProgressThrottle)
    spooled: int = 0
    skipped: int = 0
    lost: int = 0

    def line(self, raw: bytes, overlong: bool = False) -> None:
        if overlong:
            self.skipped += 1
            log.warning(
                "skipped a line longer than %d bytes: %r...", events.MAX_LINE_BYTES, raw[:80]
            )
            return
        if self.instance is None:
            return  # draining: nothing can be reported without an instance
        try:
            body = events.parse_line(raw, self.instance, self.clock())
        except events.Skip as skip:
            self.skipped += 1
            log.warning("skipped an input line: %s", skip)
            return
        except Exception:  # a bug here must not stop us reading, or the writer stalls
            self.skipped += 1
            log.exception("skipped an input line (this is a bug)")
            return
        if body is not None:
            self._send(self.throttle.offer(body, self.clock()))

    def tick(self) -> None:
        """Let a held-back copy-progress event out when its time has come."""
        self._send(self.throttle.poll(self.clock()))

    def due_in(self) -> float | None:
        return self.throttle.due_in(self.clock())

    def finish(self) -> None:
        self._send(self.throttle.flush())

    def _send(self, bodies: Sequence[dict[str, Any]]) -> None:
        for body in bodies:
            try:
                if self.sink is None:
                    raise GanetiExtError("no spool")
                self.sink.put(events.to_message(body))
            except (GanetiExtError, events.Skip) as err:
                self.lost += 1
                if self.lost == 1 or self.lost % _LOG_EVERY == 0:
                    log.error("cannot spool progress event (%d lost so far): %s", self.lost, err)
                continue
            self.spooled += 1


def pump(fd: int, monitor: Monitor, splitter: LineSplitter | None = None) -> None:
    """Read `fd` to EOF, feeding the monitor; wakes up for held-back progress events."""
    splitter = splitter or LineSplitter()
    while True:
        due = monitor.due_in()
        ready, _, _ = select.select([fd], [], [], due)
        if not ready:
            monitor.tick()
            continue
        try:
            chunk = os.read(fd, READ_CHUNK)
        except InterruptedError:
            continue
        if not chunk:
            break
        for line, overlong in splitter.feed(chunk):
            monitor.line(line, overlong)
        monitor.tick()
    for line, overlong in splitter.finish():
        monitor.line(line, overlong)
    monitor.finish()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Spool newline-delimited JSON progress events from stdin for AMQP.",
    )
    parser.add_argument(
        "instance_arg",
        nargs="?",
        metavar="INSTANCE",
        help="instance the events are about, as upstream snf-image passes it",
    )
    parser.add_argument("--instance", help="the same, as an option (default: $INSTANCE_NAME)")
    parser.add_argument(
        "--spool",
        type=Path,
        help="eventd's hand-over spool (default: <state_dir>/spool of "
        f"{paths.EVENTD_CONF}, else {paths.DEFAULT.eventd_spool_dir})",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="at most one copy-progress event per this many seconds (default 1)",
    )
    parser.add_argument("--debug", action="store_true")
    return parser


def execute(argv: Sequence[str], env: Mapping[str, str], stdin_fd: int = 0) -> int:
    logsetup.setup_logging(PROG, "stderr")
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exit_:
        # Bad arguments: still drain a pipe so the writer does not get SIGPIPE.
        if not os.isatty(stdin_fd):
            pump(stdin_fd, Monitor(None, None))
        return EXIT_USAGE if exit_.code else 0
    if args.debug:
        logging.getLogger().setLevel(logging.DEBUG)
    instance = args.instance_arg or args.instance or env.get("INSTANCE_NAME") or None
    problem = None
    if args.instance_arg and args.instance and args.instance_arg != args.instance:
        problem = "the instance is given twice, differently (INSTANCE and --instance)"
    elif instance is None:
        problem = "no instance: give INSTANCE, --instance or set INSTANCE_NAME"
    else:
        try:
            routing.progress_routing_key(instance)
        except ValidationError as err:
            problem = str(err)
    if problem:
        log.error("%s; reading stdin to its end without reporting", problem)
        pump(stdin_fd, Monitor(None, None))
        return EXIT_USAGE
    monitor = Monitor(
        instance,
        Spool(args.spool or _eventd_spool()),
        throttle=events.CopyProgressThrottle(interval=max(0.0, args.interval)),
    )
    pump(stdin_fd, monitor)
    log.debug(
        "%s: %d events spooled, %d lines skipped, %d lost",
        instance,
        monitor.spooled,
        monitor.skipped,
        monitor.lost,
    )
    return EXIT_LOST if monitor.lost else 0


def _eventd_spool() -> Path:
    try:
        return eventd_config.spool_dir()
    except GanetiExtError as err:
        # eventd refuses that configuration too; the default spool keeps the events.
        log.error("eventd's configuration: %s; spooling to the default", err)
        return paths.DEFAULT.eventd_spool_dir


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """What /usr/bin/snf-progress-monitor calls."""
    cli.run_main(lambda args: execute(args, os.environ), PROG, argv)
