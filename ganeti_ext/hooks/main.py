"""The Ganeti hook of the update path: /etc/ganeti/hooks/<hpath>-post.d/50-snf-ganeti-ext.

One dispatcher for every hook path. In the post phase it
- on the master: hands a `ganeti-hook` notification to eventd's spool (never to AMQP
  directly, so a slow or absent broker cannot slow or fail a Ganeti job);
- on the node an instance migrated or failed over away from: removes the proxy
  neighbour entries left for the instance's addresses.
It never fails a job: every problem is logged (/var/log/ganeti-ext/hooks.log, or stderr
when that cannot be opened) and the exit status is 0. The pre phase does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NoReturn

from ganeti_ext import logsetup, node, paths
from ganeti_ext.environ import hooks as hook_env
from ganeti_ext.environ.hooks import HookInstance
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.eventd import config as eventd_config
from ganeti_ext.hooks import neighbours, notify
from ganeti_ext.network import hook as nic_hook
from ganeti_ext.network import settings as network_settings
from ganeti_ext.network.host import Host
from ganeti_ext.runner import DEFAULT_RUNNER, Runner
from ganeti_ext.spool import Spool

PROG = "snf-ganeti-hook"
LOG_FILE_NAME = "hooks.log"

log = logging.getLogger(PROG)


@dataclass
class HookContext:
    """Everything a hook run touches, so tests can replace each piece."""

    paths: paths.Paths = paths.DEFAULT
    runner: Runner = DEFAULT_RUNNER
    clock: Callable[[], float] = time.time
    own_name: Callable[[], str] = field(default=node.canonical_name)

    def spool(self) -> Spool:
        try:
            where = eventd_config.spool_dir(self.paths)
        except GanetiExtError as err:
            # eventd refuses that configuration too; the default spool keeps the message.
            log.error(
                "eventd's configuration: %s; spooling to %s", err, self.paths.eventd_spool_dir
            )
            where = self.paths.eventd_spool_dir
        return Spool(where)


@dataclass
class Outcome:
    """What a run did (for tests and the log)."""

    spooled: str | None = None  # the message id
    cleaned: list[neighbours.ProxyEntry] = field(default_factory=list)
    nics: list[str] = field(default_factory=list)  # taps snf-network reconciled
    skipped: str | None = None


def run(env: Mapping[str, str], context: HookContext | None = None) -> Outcome:
    """Do the hook's work for environment `env`; raises only on bugs and bad input."""
    context = context or HookContext()
    parsed = hook_env.parse(env)
    outcome = Outcome()
    if parsed.phase != "post":
        outcome.skipped = "pre phase"
        return outcome
    if parsed.hooks_path not in notify.HPATHS:
        outcome.skipped = f"hook path {parsed.hooks_path} is not reported"
        return outcome
    me = context.own_name()
    network = _snf_network_settings(context.paths)
    if node.is_master(me, node.master_name(context.paths.ganeti_data_dir), parsed.master):
        message = notify.build(
            parsed,
            context.clock(),
            node=me,
            # A bad defaults file: the default prefix (the NIC script refuses it loudly).
            tag_prefix=(network or network_settings.Settings()).firewall_tag_prefix,
        )
        if message is not None:
            try:
                context.spool().put(message)
            except GanetiExtError as err:
                log.error(
                    "%s %s: notification not spooled: %s", parsed.hooks_path, parsed.op_code, err
                )
            else:
                outcome.spooled = message.message_id
                log.info(
                    "%s %s %s: spooled %s",
                    parsed.hooks_path,
                    parsed.op_code,
                    message.body.get("instance") or message.body.get("network"),
                    message.message_id,
                )
    if (
        parsed.hooks_path in notify.MOVE_HPATHS
        and node.same_node(me, parsed.pre.old_primary)
        and not node.same_node(me, parsed.pre.new_primary)
        and parsed.pre.instance is not None
    ):
        outcome.cleaned = _clean_up_neighbours(parsed.pre.instance, network, context)
    outcome.nics = nic_hook.after_hook(parsed, context.paths)
    return outcome


def _snf_network_settings(where: paths.Paths) -> network_settings.Settings | None:
    """snf-network's settings, read once per run; None (logged) for a bad defaults file:
    a hook must not fail the job over it."""
    try:
        return nic_hook.context(where).settings
    except GanetiExtError as err:
        log.error("snf-network's settings: %s (default firewall tag prefix, no clean-up)", err)
        return None


def _clean_up_neighbours(
    instance: HookInstance, network: network_settings.Settings | None, context: HookContext
) -> list[neighbours.ProxyEntry]:
    # The proxy entries are snf-network's: none where it never ran on this node.
    if network is None or not network.state_dir.is_dir():
        return []
    return neighbours.clean_up(instance, Host(network.state_dir, context.runner))


def main(env: Mapping[str, str] | None = None, context: HookContext | None = None) -> NoReturn:
    """What the hook shim calls; always exits 0 (a post-hook's status is ignored anyway,
    and a failing pre-hook would abort the operation)."""
    context = context or HookContext()
    started = time.monotonic()
    environment = os.environ if env is None else env
    try:
        context.paths.ganeti_ext_log_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError:
        pass  # setup_logging falls back to stderr, which Ganeti keeps in its own log
    try:
        logsetup.setup_logging(
            PROG, context.paths.ganeti_ext_log_dir / LOG_FILE_NAME, fallback_to_stderr=True
        )
    except Exception:  # logging is a nicety; the hook must still run
        pass
    try:
        run(environment, context)
    except GanetiExtError as err:
        log.error("%s: %s", environment.get("GANETI_HOOKS_PATH", "?"), err)
    except Exception:  # the last line of defence: never a traceback into a Ganeti job
        log.exception(
            "%s: unexpected error (this is a bug)", environment.get("GANETI_HOOKS_PATH", "?")
        )
    log.debug("done in %.3f s", time.monotonic() - started)
    sys.exit(0)
