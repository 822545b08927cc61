"""Command line of snf-events: tail, consume, reconcile."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import amqp.exceptions
import kombu.exceptions

from ganeti_ext import cli, logsetup
from ganeti_ext.consumer import consume, messages, reconcile, state, tail, topology
from ganeti_ext.errors import GanetiExtError

PROG = "snf-events"
DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"
DEFAULT_RAPI = "https://127.0.0.1:5080"
EXIT_DIFFERENCES = 3  # reconcile found differences and was not asked to fix them (1: error)
SEEN_KEEP_S = 7 * 24 * 3600  # how long message ids are remembered for de-duplication

log = logging.getLogger(PROG)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Reference consumer of the Ganeti update path (AMQP)."
    )
    parser.add_argument("--debug", action="store_true", help="log debugging details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def broker(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--url",
            action="append",
            metavar="URL",
            help=f"AMQP broker URL; repeat for fail-over (default {DEFAULT_URL})",
        )
        sub.add_argument(
            "--url-file",
            type=Path,
            metavar="PATH",
            help="read the broker URLs from PATH, one per line (keeps the password out of"
            " the process list)",
        )

    def limits(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--max-messages", type=int, metavar="N", help="stop after N messages")
        sub.add_argument(
            "--idle-exit",
            type=float,
            metavar="SECONDS",
            help="stop after SECONDS without a message",
        )

    show = commands.add_parser("tail", help="print the live message stream, one line each")
    broker(show)
    show.add_argument(
        "--type", action="append", default=[], metavar="TYPE", help="only this message type"
    )
    show.add_argument("--json", action="store_true", help="print each message as JSON")
    limits(show)

    eat = commands.add_parser("consume", help="apply the stream to a state database")
    broker(eat)
    eat.add_argument("--db", required=True, metavar="sqlite:///PATH", help="state database")
    eat.add_argument(
        "--once", action="store_true", help="apply what is queued, then stop (1 s idle)"
    )
    eat.add_argument(
        "--no-validate",
        action="store_true",
        help="skip the JSON schema check (the structural checks remain)",
    )
    eat.add_argument("--queue-prefix", default=topology.QUEUE_PREFIX, help=argparse.SUPPRESS)
    limits(eat)

    rec = commands.add_parser("reconcile", help="compare the state database with Ganeti")
    rec.add_argument("--db", required=True, metavar="sqlite:///PATH", help="state database")
    rec.add_argument("--rapi", default=DEFAULT_RAPI, metavar="URL", help="Ganeti RAPI URL")
    rec.add_argument("--user", required=True, help="RAPI user")
    rec.add_argument("--password-file", required=True, type=Path, help="RAPI password file")
    trust = rec.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", type=Path, help="the cluster's RAPI certificate (PEM)")
    trust.add_argument("--insecure", action="store_true", help="do not verify RAPI's certificate")
    rec.add_argument("--fix", action="store_true", help="update the database to Ganeti's view")
    rec.add_argument("--json", action="store_true", help="print findings as JSON")
    return parser


class _Stopper:
    """SIGTERM/SIGINT ask the loops to stop after the message in hand."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)

    def _stop(self, _signum: int, _frame: object) -> None:
        self.requested = True

    def __call__(self) -> bool:
        return self.requested


def read_url_file(path: Path) -> list[str]:
    """Broker URLs from a file, one per line; blank lines and # comments are skipped.
    Errors name the file and line, never the URL (it holds a password)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise GanetiExtError(f"--url-file {path}: cannot read: {reason}") from None
    urls = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        url = line.strip()
        if not url or url.startswith("#"):
            continue
        if not url.startswith(("amqp://", "amqps://")) or any(c.isspace() for c in url):
            raise GanetiExtError(f"--url-file {path}: line {lineno} is not an amqp:// URL")
        urls.append(url)
    if not urls:
        raise GanetiExtError(f"--url-file {path}: no broker URL in it")
    return urls


def _urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.url or [])
    if args.url_file is not None:
        urls += read_url_file(args.url_file)
    return urls or [DEFAULT_URL]


def _validator(args: argparse.Namespace) -> messages.SchemaValidator | None:
    if args.no_validate:
        return None
    try:
        validator = messages.SchemaValidator.from_directory()
    except ImportError:
        log.warning("python3-jsonschema is not installed: messages are not schema-checked")
        return None
    if not validator.types:
        log.warning("no message schemas found in %s", messages.SCHEMA_DIR)
    return validator


def cmd_tail(args: argparse.Namespace, stop: _Stopper) -> int:
    try:
        connection = consume.connect(_urls(args))
    except ConnectionError as err:
        raise GanetiExtError(str(err)) from None
    try:
        tail.run(
            connection,
            sys.stdout,
            types=set(args.type),
            as_json=args.json,
            stop=stop,
            max_messages=args.max_messages,
            idle_exit=args.idle_exit,
            on_ready=lambda queue: print(
                f"snf-events tail: listening (queue {queue})", file=sys.stderr, flush=True
            ),
        )
    except (OSError, kombu.exceptions.KombuError, amqp.exceptions.AMQPError) as err:
        raise GanetiExtError(f"lost the AMQP broker: {err}") from None
    finally:
        connection.release()
    return 0


def cmd_consume(args: argparse.Namespace, stop: _Stopper) -> int:
    db = state.StateDB.from_url(args.db)
    try:
        pruned = db.prune_seen(SEEN_KEEP_S)
        if pruned:
            log.info("forgot %d message ids older than %d days", pruned, SEEN_KEEP_S // 86400)
        handler = consume.Handler(db, _validator(args))
        idle_exit = 1.0 if args.once and args.idle_exit is None else args.idle_exit
        urls = _urls(args)
        try:
            stats = consume.run(
                lambda: consume.connect(urls),
                handler,
                limits=consume.LoopLimits(max_messages=args.max_messages, idle_exit=idle_exit),
                stop=stop,
                queue_prefix=args.queue_prefix,
            )
        except ConnectionError as err:
            raise GanetiExtError(str(err)) from None
        except sqlite3.Error as err:
            # The message in hand was not acked: the broker delivers it again next time.
            raise GanetiExtError(f"state database {db.path}: {err}") from None
        log.info("handled %d messages: %s", stats.handled, stats.outcomes)
        print(json.dumps({"handled": stats.handled, **stats.outcomes, "db": db.counters()}))
    finally:
        db.close()
    return 0


def cmd_reconcile(args: argparse.Namespace) -> int:
    client = reconcile.RapiClient(
        url=args.rapi,
        user=args.user,
        password=reconcile.read_password(args.password_file),
        ca_file=args.ca_file,
        insecure=args.insecure,
    )
    live = reconcile.ganeti_instances(client.instances())
    db = state.StateDB.from_url(args.db)
    try:
        report = reconcile.diff(db.instances(include_deleted=True), live)
        if args.fix:
            reconcile.fix(db, report)
    finally:
        db.close()
    if args.json:
        print(
            json.dumps(
                {
                    "summary": report.summary(),
                    "fixed": bool(args.fix),
                    "findings": [
                        {"kind": f.kind, "name": f.name, "differences": list(f.differences)}
                        for f in report.findings
                    ],
                }
            )
        )
    else:
        for finding in report.findings:
            print(finding.describe())
        summary = report.summary()
        verdict = ""
        if report.findings:
            verdict = " (fixed)" if args.fix else " (not fixed: --fix updates the database)"
        print(
            f"{summary['checked']} instances checked: {summary['stale']} stale, "
            f"{summary['orphan']} orphan, {summary['unsynced']} unsynced{verdict}"
        )
    return EXIT_DIFFERENCES if report.findings and not args.fix else 0


def execute(argv: Sequence[str]) -> int:
    args = _parser().parse_args(list(argv))
    logsetup.setup_logging(PROG, "stderr", debug=args.debug)
    stop = _Stopper()
    stop.install()
    if args.command == "tail":
        return cmd_tail(args, stop)
    if args.command == "consume":
        return cmd_consume(args, stop)
    return cmd_reconcile(args)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """What /usr/bin/snf-events calls."""
    cli.run_main(execute, PROG, argv)
