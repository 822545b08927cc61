"""Telling systemd (or whoever set NOTIFY_SOCKET, as the lab does) that a daemon is
ready: the sd_notify(3) datagram, without libsystemd. Units use Type=notify, so
"started" means "serving", and nothing has to guess with a sleep."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(state: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Send `state` (e.g. "READY=1\\nSTATUS=watching") to $NOTIFY_SOCKET; False when there
    is none. A failure is logged, never raised: a daemon does not stop over it."""
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # the abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
    except OSError as err:
        log.warning("cannot notify the service manager at %s: %s", environ["NOTIFY_SOCKET"], err)
        return False
    return True


def ready(status: str, environ: Mapping[str, str] = os.environ) -> bool:
    return notify(f"READY=1\nSTATUS={status}", environ)
