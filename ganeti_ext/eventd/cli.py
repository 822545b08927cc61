"""Command line of snf-ganeti-eventd(8)."""

from __future__ import annotations

import argparse
import logging
import textwrap
from pathlib import Path

from ganeti_ext import config as configfile
from ganeti_ext import logsetup, paths
from ganeti_ext.cli import run_main
from ganeti_ext.errors import ConfigError
from ganeti_ext.eventd.config import EventdConfig

PROG = "snf-ganeti-eventd"

DESCRIPTION = """\
Follow the Ganeti job queue and publish every status change of an instance, network
or cluster operation as a persistent JSON message on an AMQP topic exchange (publisher
confirms). Runs on every master candidate; only the current master publishes job
messages. Every node also publishes the messages that Ganeti hooks and the image
progress monitor hand over in its spool directory.

Nothing is lost: each message is written to a durable outbox before it is published and
leaves it only when the broker confirmed it. With the broker down, eventd keeps
watching and queuing and retries with exponential backoff. On start it catches up on
the job changes it missed (the queue and its archive are the truth) without re-sending
what it already handled; on its very first start it does not replay the archive.
"""

EPILOG = f"""\
files:
  {paths.EVENTD_CONF}        configuration (INI: [amqp], [eventd])
  <state_dir>/outbox/          job messages waiting for the broker
  <state_dir>/spool/           messages handed over by hooks and the progress monitor
  <state_dir>/*/bad/           corrupt message files, set aside with the reason
  <state_dir>/state.sqlite     which job statuses were handled
  {paths.EVENTD_LOG_FILE}      log (or syslog/stderr, see [eventd] log)

signals:
  SIGHUP reopens the log file (logrotate); SIGTERM and SIGINT stop cleanly (messages
  still queued stay in the outbox for the next start).

exit status:
  0 stopped cleanly (for --catch-up-only: every message was published); 1 error
  (bad configuration, unusable state directory); 2 usage error; 3 --catch-up-only left
  messages queued (broker unreachable).
"""

EXIT_QUEUED = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default: {paths.EVENTD_CONF}, all defaults when it is "
        "missing; a file named here must exist)",
    )
    parser.add_argument(
        "--foreground",
        action="store_true",
        help="run in the foreground (the only mode: for systemd and for the record)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the configuration, print the effective settings and exit",
    )
    parser.add_argument(
        "--catch-up-only",
        action="store_true",
        help="catch up on the queue, publish what can be published, and exit",
    )
    parser.add_argument(
        "--queue-dir", metavar="DIR", type=Path, help="job queue to follow ([eventd] queue_dir)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        type=Path,
        help="state, outbox and spool directory ([eventd] state_dir)",
    )
    parser.add_argument(
        "--assume-master",
        choices=("auto", "yes", "no"),
        default="auto",
        help="act as master (yes), as a quiet candidate (no), or ask ssconf (auto, default);"
        " for tests and benchmarks on a scratch queue",
    )
    parser.add_argument(
        "--log", metavar="TARGET", help="log file path, 'syslog' or 'stderr' ([eventd] log)"
    )
    parser.add_argument("--debug", action="store_true", help="log at debug level")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    config_path = args.config or paths.EVENTD_CONF
    settings = configfile.load(EventdConfig, config_path, must_exist=args.config is not None)
    amqp = settings.amqp
    if amqp.retry_max_interval < amqp.retry_interval:
        raise ConfigError(
            config_path, "must not be below retry_interval", "amqp", "retry_max_interval"
        )
    from ganeti_ext.eventd.daemon import Eventd, Layout

    layout = Layout(
        queue_dir=args.queue_dir or settings.eventd.queue_dir,
        state_dir=args.state_dir or settings.eventd.state_dir,
        ganeti_data_dir=settings.eventd.ganeti_data_dir,
    )
    if args.check_config:
        print(describe_settings(config_path, settings, layout))
        return 0
    logsetup.setup_logging(
        PROG, args.log or settings.eventd.log, debug=args.debug or settings.eventd.debug
    )
    forced = {"auto": None, "yes": True, "no": False}[args.assume_master]
    daemon = Eventd(settings, layout, assume_master=forced)
    if args.catch_up_only:
        return EXIT_QUEUED if daemon.catch_up_only() else 0
    logsetup.install_sighup_reopen()
    daemon.install_signal_handlers()
    daemon.run()
    return 0


def describe_settings(source: str, settings: EventdConfig, layout: object) -> str:
    amqp, eventd = settings.amqp, settings.eventd
    urls = " ".join(logsetup.redact_url(url) for url in amqp.urls)
    return textwrap.dedent(
        f"""\
        {source}: OK
        [amqp] urls = {urls}
        [amqp] exchange = {amqp.exchange}
        [amqp] connect_timeout = {amqp.connect_timeout:g}
        [amqp] confirm_timeout = {amqp.confirm_timeout:g}
        [amqp] heartbeat = {amqp.heartbeat:g}
        [amqp] retry_interval = {amqp.retry_interval:g}
        [amqp] retry_max_interval = {amqp.retry_max_interval:g}
        [eventd] queue_dir = {layout.queue_dir}
        [eventd] state_dir = {layout.state_dir}
        [eventd] ganeti_data_dir = {eventd.ganeti_data_dir}
        [eventd] log = {eventd.log}
        [eventd] heartbeat_tag_prefix = {eventd.heartbeat_tag_prefix}
        [eventd] failover_replay = {eventd.failover_replay:g}
        [eventd] fsync = {"yes" if eventd.fsync else "no"}
        [eventd] debug = {"yes" if eventd.debug else "no"}"""
    )


def run() -> None:
    logging.captureWarnings(True)
    run_main(main, PROG)
