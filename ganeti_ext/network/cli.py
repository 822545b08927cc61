"""Entry point of the NIC scripts: kvm-vif-bridge (Ganeti 3.0), network/<mode>/{up,down}
(Ganeti 3.2) and `snf-network-nic up|down|reconcile` for admins and hooks."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import NoReturn

from ganeti_ext import logsetup, paths
from ganeti_ext.cli import run_main
from ganeti_ext.errors import EnvError, ValidationError
from ganeti_ext.network import settings as settings_mod
from ganeti_ext.network.host import Host
from ganeti_ext.network.nic import Context, down, ensure_skeleton, reconcile, up

PROG = "snf-network"
LOG_FILE = "snf-network.log"
ACTIONS = ("up", "down", "reconcile")


def action_for(argv0: str, args: list[str]) -> str:
    """kvm-vif-bridge means up; .../up and .../down say it; otherwise the first argument."""
    name = os.path.basename(argv0)
    if name == "kvm-vif-bridge":
        return "up"
    if name in ("up", "down"):
        return name
    if args and args[0] in ACTIONS:
        return args[0]
    raise ValidationError(f"usage: {name} {{{'|'.join(ACTIONS)}}} (environment as from kvm-ifup)")


def context() -> Context:
    loaded = settings_mod.load(paths.DEFAULT.snf_network_defaults)
    return Context(settings=loaded, host=Host(loaded.state_dir))


def main_action(action: str, env: Mapping[str, str]) -> int:
    ctx = context()
    if action == "up":
        up(env, ctx)
    elif action == "down":
        tap = env.get("INTERFACE")
        if not tap:
            raise EnvError("INTERFACE", "is missing or empty")
        down(tap, ctx)
    else:
        ensure_skeleton(ctx)  # an admin's reconcile also applies new settings
        for tap in reconcile(ctx):
            print(tap)
    return 0


def main(argv0: str | None = None) -> NoReturn:
    argv0 = argv0 or sys.argv[0]
    try:
        paths.DEFAULT.ganeti_ext_log_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError:
        pass
    logsetup.setup_logging(
        PROG, paths.DEFAULT.ganeti_ext_log_dir / LOG_FILE, fallback_to_stderr=True
    )
    run_main(lambda args: main_action(action_for(argv0, args), os.environ), PROG)
