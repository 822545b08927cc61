"""Whether this node is the cluster master (only the master publishes job messages).

The node's own name is what Ganeti would call it: the canonical name of the host name
through the resolver (like Ganeti's netutils.Hostname.GetSysName); the master's name is
in ssconf_master_node, rewritten by Ganeti on failover.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

log = logging.getLogger(__name__)


def canonical_name(hostname: str | None = None) -> str:
    """The resolver's canonical name of `hostname` (default: this host)."""
    name = hostname or socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    except OSError:
        return socket.getfqdn(name).lower()
    for info in infos:
        if info[3]:
            return info[3].lower()
    return name.lower()


def read_master(path: Path) -> str | None:
    """The master's name from ssconf_master_node (None when unreadable: not a cluster node)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.strip().splitlines()
    return lines[0].strip().lower() if lines else None


def same_node(own: str, master: str | None) -> bool:
    if not master:
        return False
    own, master = own.lower().rstrip("."), master.lower().rstrip(".")
    # A short host name matches its own FQDN (ssconf holds FQDNs, a host may not).
    return own == master or own.split(".", 1)[0] == master or master.split(".", 1)[0] == own


class MasterCheck:
    """Answers "am I the master?", re-reading ssconf when asked to refresh."""

    def __init__(
        self, ssconf_master: Path, own_name: str | None = None, forced: bool | None = None
    ):
        self.ssconf_master = ssconf_master
        self.own_name = own_name or canonical_name()
        self.forced = forced
        self.master: str | None = None
        self.is_master = False
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the master's name; return True if our role changed."""
        before = self.is_master
        if self.forced is not None:
            self.is_master = self.forced
        else:
            self.master = read_master(self.ssconf_master)
            self.is_master = same_node(self.own_name, self.master)
        return before != self.is_master
