"""Command line of nfdhcpd(8)."""

from __future__ import annotations

import argparse
import logging
import os
import pwd
from collections.abc import Sequence

from ganeti_ext import logsetup, paths, sdnotify
from ganeti_ext.cli import run_main
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.nfdhcpd import config as nfconfig
from ganeti_ext.nfdhcpd.daemon import Daemon, keep_capabilities, write_pidfile
from ganeti_ext.nfdhcpd.table import Inotify

PROG = "nfdhcpd"
log = logging.getLogger(PROG)

EPILOG = f"""\
files:
  {paths.NFDHCPD_CONF}   configuration ([general], [dhcp], [ipv6])
  {paths.NFDHCPD_STATE_DIR}/<tap>      binding files written by the NIC scripts
  {paths.NFDHCPD_LOG_DIR}/nfdhcpd.log  log (unless --log)

The NFQUEUE rules are installed by `nfdhcpd-rules up` (the systemd unit runs it).

signals:
  SIGHUP reopens the log file; SIGUSR1 logs the binding table, leases and counters;
  SIGTERM and SIGINT stop cleanly.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Answer DHCPv4, DHCPv6, router and neighbour solicitations of the "
        "virtual machines on this host from NFQUEUE, from the bindings that the NIC "
        "scripts write. Runs in the foreground.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"configuration file (default: {paths.NFDHCPD_CONF}; a file named here must exist)",
    )
    parser.add_argument(
        "--log", help="log file, 'syslog' or 'stderr' (default: <logdir>/nfdhcpd.log)"
    )
    parser.add_argument("--debug", action="store_true", help="log every answer")
    parser.add_argument(
        "--check", action="store_true", help="validate the configuration and bindings, then exit"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    config_path = args.config or paths.NFDHCPD_CONF
    cfg = nfconfig.load(config_path, must_exist=args.config is not None)
    general = cfg.raw.general
    target = args.log or str(general.logdir / "nfdhcpd.log")
    user = None
    if general.user and os.geteuid() == 0:
        try:
            user = pwd.getpwnam(general.user)
        except KeyError:
            raise GanetiExtError(
                f"{config_path}: [general] user: no such user: {general.user!r}"
            ) from None
    if target not in ("stderr", "syslog"):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if user is not None:
            open(target, "a").close()
            os.chown(target, user.pw_uid, user.pw_gid)
    logsetup.setup_logging(PROG, target, debug=args.debug)
    logsetup.install_sighup_reopen()
    daemon = Daemon(cfg)
    general.datapath.mkdir(parents=True, exist_ok=True)
    if args.check:
        daemon.table.rescan()
        for line in daemon.table.dump():
            print(line)
        return 1 if daemon.table.bad else 0
    inotify = Inotify(general.datapath)  # before the scan, so no write is missed
    daemon.table.rescan()
    daemon.bind_queues()
    write_pidfile(general.pidfile)
    if user is not None:
        os.chown(general.pidfile.parent, user.pw_uid, user.pw_gid)
        keep_capabilities(general.user)
        log.info("running as %s with CAP_NET_ADMIN and CAP_NET_RAW only", general.user)
    log.info(
        "nfdhcpd started: %d bindings, dhcp %s, ipv6 %s",
        len(daemon.table),
        "on" if cfg.dhcp else "off",
        cfg.ipv6.mode if cfg.ipv6 else "off",
    )
    # Queues bound, bindings read: from now on a request gets its answer.
    sdnotify.ready(f"answering for {len(daemon.table)} bindings")
    try:
        daemon.run(inotify)
    finally:
        daemon.close()
        inotify.close()
        try:
            general.pidfile.unlink()
        except OSError:
            pass
    return 0


def run() -> None:
    run_main(main, PROG)
