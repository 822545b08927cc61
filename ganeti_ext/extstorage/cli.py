"""Entry point of the archipelago ExtStorage scripts (extstorage/archipelago/<verb>)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import NoReturn

from ganeti_ext import cli, logsetup
from ganeti_ext.environ import extstorage as environ
from ganeti_ext.extstorage import settings
from ganeti_ext.extstorage.filestore.store import FileStore
from ganeti_ext.extstorage.loopdev import LoopDevices
from ganeti_ext.extstorage.provider import ArchipelagoProvider
from ganeti_ext.node import canonical_name, ganeti_version
from ganeti_ext.paths import DEFAULT, Paths
from ganeti_ext.runner import DEFAULT_RUNNER, Runner, spawn_detached


def open_store(
    conf: settings.ArchipelagoConfig, runner: Runner = DEFAULT_RUNNER, *, spawn: bool = True
) -> FileStore:
    """The backend the configuration names ([store] backend; only `file` so far)."""
    return FileStore(
        conf.store.path,
        loops=LoopDevices(runner),
        lock_timeout=conf.store.lock_timeout,
        spawn=spawn_detached if spawn else None,
    )


def execute(
    verb: str,
    env: Mapping[str, str],
    *,
    paths: Paths = DEFAULT,
    runner: Runner = DEFAULT_RUNNER,
    node: str | None = None,
) -> str:
    """Run ExtStorage verb `verb` for the environment `env`; returns its stdout text."""
    request = environ.parse(verb, env)
    conf = settings.load(paths.archipelago_conf)
    provider = ArchipelagoProvider(
        open_store(conf, runner),
        node or canonical_name(),
        ganeti_version(paths.ganeti_share_link),
    )
    return provider.run(request)


def main(
    verb: str,
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    paths: Paths = DEFAULT,
    runner: Runner = DEFAULT_RUNNER,
) -> NoReturn:
    """What each extstorage/archipelago/<verb> script calls; exits with the result."""
    prog = f"archipelago-{verb}"
    environment = os.environ if env is None else env

    def run(_args: list[str]) -> int:
        log = logsetup.setup_logging(prog, paths.archipelago_log_file, fallback_to_stderr=True)
        log.info("%s volume %s", verb, environment.get("VOL_NAME", "-"))
        sys.stdout.write(execute(verb, environment, paths=paths, runner=runner))
        return 0

    cli.run_main(run, prog, argv)
