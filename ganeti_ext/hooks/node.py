"""Which node a hook runs on, and whether it is the master.

Ganeti runs hooks on the master and on the instance's nodes; only the master reports
(eventd publishes job messages there too). Ganeti names a node by its FQDN, lower-case
(netutils.Hostname.GetSysName); the master's name is in ssconf_master_node, which
every node keeps current.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from ganeti_ext import paths

SSCONF_MASTER_NODE = "ssconf_master_node"


def own_name(getfqdn: Callable[[], str] = socket.getfqdn) -> str:
    """This node's name as Ganeti knows it."""
    return getfqdn().strip().rstrip(".").lower()


def master_name(data_dir: Path = paths.DEFAULT.ganeti_data_dir) -> str | None:
    """The master's name from ssconf; None when the file is missing or empty."""
    try:
        text = (data_dir / SSCONF_MASTER_NODE).read_text(encoding="utf-8")
    except OSError:
        return None
    name = text.strip().rstrip(".").lower()
    return name or None


def is_master(node: str, master: str | None, fallback: str | None = None) -> bool:
    """Whether `node` is the master; `fallback` (GANETI_MASTER) when ssconf is unreadable."""
    chosen = master or (fallback.strip().rstrip(".").lower() if fallback else None)
    return chosen is not None and node == chosen


def same_node(node: str, other: str | None) -> bool:
    return other is not None and node == other.strip().rstrip(".").lower()
