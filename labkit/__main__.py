"""`./lab`: the ganeti-ext lab and demo (see README.md)."""

from __future__ import annotations

import argparse
import sys

from labkit import commands
from labkit.progress import StepFailed, fail

DESCRIPTION = """\
A real Ganeti cluster (3.0 on Debian 12, 3.1 on 13) in network namespaces, with
RabbitMQ, guest assets for qemu/TCG guests, and the suite installed from its own .deb
packages; the other Debian release proved in a root built from Debian's packages.

  up [--nodes 1|2]   bring the lab up (or repair it); idempotent
  down               remove everything the lab created; safe to run twice
  status             what is running
  exec [--node N] [--] CMD...
                     run CMD on a node (default: the master), in its namespace,
                     with the clean environment Ganeti's daemons have
  demo               up + a demo instance, then how to look around
  test [PYTEST ARGS] up --nodes 2 + lint (ruff, lintian) + the whole test
                     suite, then (without PYTEST ARGS) the other release
  other-release      the other Debian release alone: package build, apt install,
                     unit tests, Ganeti cluster init with the suite's OS,
                     ExtStorage provider and NIC script, the store's tests
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lab", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in ("up", "demo"):
        cmd = sub.add_parser(name, help=f"{name} (see above)")
        cmd.add_argument(
            "--nodes",
            type=int,
            choices=(1, 2),
            default=None,
            help="cluster size (default: keep the current one, else 1)",
        )
    sub.add_parser("down", help="remove the lab")
    sub.add_parser("status", help="show the lab's state")
    ex = sub.add_parser("exec", help="run a command on a lab node")
    ex.add_argument("--node", type=int, default=1, help="node number (default 1, the master)")
    ex.add_argument("cmd", nargs=argparse.REMAINDER, help="the command")
    tst = sub.add_parser("test", help="set up and run the whole test suite")
    tst.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments")
    sub.add_parser("other-release", help="prove the other Debian release (see above)")
    args = parser.parse_args(argv)

    try:
        if args.command == "up":
            commands.up(args.nodes)
        elif args.command == "demo":
            commands.demo(args.nodes)
        elif args.command == "down":
            commands.down()
        elif args.command == "status":
            return commands.status()
        elif args.command == "exec":
            cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            commands.exec_on(args.node, cmd)
        elif args.command == "test":
            extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
            return commands.test(extra)
        elif args.command == "other-release":
            return commands.other_release()
    except StepFailed as exc:
        return fail(exc)
    except KeyboardInterrupt:
        print("[lab] interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
