"""This node's name as Ganeti knows it, and whether it is the master: one answer for the
hooks, eventd and the ExtStorage provider.

Ganeti names a node by the resolver's canonical name of its host name, lower-case
(netutils.Hostname.GetSysName); the master's name is in ssconf_master_node, which every
node keeps current and Ganeti rewrites on failover.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ganeti_ext import paths

SSCONF_MASTER_NODE = "ssconf_master_node"


def _normal(name: str) -> str:
    return name.strip().rstrip(".").lower()


def canonical_name(hostname: str | None = None) -> str:
    """The resolver's canonical name of `hostname` (default: this host), lower-case."""
    name = hostname or socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, None, 0, socket.SOCK_STREAM, 0, socket.AI_CANONNAME)
    except OSError:
        return _normal(socket.getfqdn(name))
    for info in infos:
        if info[3]:
            return _normal(info[3])
    return _normal(name)


def master_name(data_dir: Path = paths.DEFAULT.ganeti_data_dir) -> str | None:
    """The master's name from ssconf; None when the file is missing or empty."""
    return master_from(data_dir / SSCONF_MASTER_NODE)


def master_from(ssconf_master_node: Path) -> str | None:
    """The master's name in an ssconf_master_node file (None: unreadable or empty)."""
    try:
        text = ssconf_master_node.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = text.strip().splitlines()
    return (_normal(lines[0]) or None) if lines else None


def same_node(own: str, other: str | None) -> bool:
    """Whether two names are one node; a short host name matches its own FQDN (ssconf
    holds FQDNs, a host's name may be short)."""
    if not other:
        return False
    own, other = _normal(own), _normal(other)
    return own == other or own.split(".", 1)[0] == other or other.split(".", 1)[0] == own


def is_master(own: str, master: str | None, fallback: str | None = None) -> bool:
    """Whether `own` is the master; `fallback` (a hook's GANETI_MASTER) when ssconf is
    unreadable."""
    return same_node(own, master or fallback)


def ganeti_version(share_link: Path = paths.DEFAULT.ganeti_share_link) -> tuple[int, int] | None:
    """(major, minor) of the Ganeti this node runs, from where its share link points
    ("/usr/share/ganeti/3.1" -> (3, 1)); None when that cannot be told."""
    try:
        target = os.readlink(share_link)
    except OSError:
        return None
    major, dot, minor = os.path.basename(target.rstrip("/")).partition(".")
    if not (dot and major.isdigit() and minor.isdigit()):
        return None
    return int(major), int(minor)
