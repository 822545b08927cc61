"""What the Ganeti post-hooks do for snf-network: Ganeti 3.0 never calls a NIC down
script, so after an instance stops, is removed, moves away, reboots or is modified, the
node takes down every recorded tap that no longer exists; after a modify it also
re-applies the instance's live taps with its current tags (a new firewall profile) and
NIC indexes (a NIC removed before them)."""

from __future__ import annotations

import dataclasses
import logging

from ganeti_ext import paths as paths_mod
from ganeti_ext.environ.hooks import HookEnv
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.network import settings as settings_mod
from ganeti_ext.network.host import Host
from ganeti_ext.network.nic import Context, reconcile

log = logging.getLogger(__name__)

HPATHS = (
    "instance-stop",
    "instance-remove",
    "instance-migrate",
    "instance-failover",
    "instance-reboot",
    "instance-modify",
)


def context(paths: paths_mod.Paths) -> Context:
    """The NIC scripts' context; default directories follow `paths` (re-rooted in tests)."""
    loaded = settings_mod.load(paths.snf_network_defaults)
    defaults = settings_mod.Settings()
    if loaded.state_dir == defaults.state_dir:
        loaded = dataclasses.replace(loaded, state_dir=paths.snf_network_state_dir)
    if loaded.nfdhcpd_state_dir == defaults.nfdhcpd_state_dir:
        loaded = dataclasses.replace(loaded, nfdhcpd_state_dir=paths.nfdhcpd_state_dir)
    return Context(settings=loaded, host=Host(loaded.state_dir))


def after_hook(env: HookEnv, paths: paths_mod.Paths = paths_mod.DEFAULT) -> list[str]:
    """Reconcile this node's NIC rules after an instance operation; never raises."""
    if env.hooks_path not in HPATHS:
        return []
    try:
        ctx = context(paths)
        if not ctx.settings.state_dir.is_dir():
            return []  # snf-network has never run on this node
        instance = env.post.instance if env.post and env.post.instance else env.pre.instance
        if env.hooks_path == "instance-modify" and instance is not None:
            return reconcile(ctx, instance.name, tuple(instance.tags), instance.nics)
        return reconcile(ctx)
    except GanetiExtError as err:
        log.error("%s: snf-network reconcile failed: %s", env.hooks_path, err)
        return []
