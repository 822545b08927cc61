"""Entering a lab namespace from Python, for sockets (AMQP, RAPI) that must live in it."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


@contextmanager
def entered(netns: str) -> Iterator[None]:
    """Run the block in netns; sockets created there stay there after the block ends.

    setns(CLONE_NEWNET) switches only the calling thread, so other threads are unaffected.
    """
    with open(f"/run/netns/{netns}") as target, open("/proc/thread-self/ns/net") as home:
        _setns(target.fileno())
        try:
            yield
        finally:
            _setns(home.fileno())
