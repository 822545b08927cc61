"""The one chokepoint that changes this host's networking for the NIC scripts.

Every nft/ip command goes through Host, and every change happens under one
host-wide lock (flock on STATE_DIR/.lock), so parallel NIC ups never interleave their
steps. Failed nft batches are retried: another writer's transaction (an admin, a
firewall manager) can make a batch fail once.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ganeti_ext.errors import CommandError, GanetiExtError
from ganeti_ext.fsutil import exclusive_lock
from ganeti_ext.runner import DEFAULT_RUNNER, CompletedCommand, Runner, stderr_tail

log = logging.getLogger(__name__)

T = TypeVar("T")
TIMEOUT = 10.0
LOCK_TIMEOUT = 60.0
RETRIES = 3
_ABSENT = "No such file or directory"  # what nft says of a missing table or chain


class Host:
    def __init__(
        self,
        state_dir: Path,
        runner: Runner = DEFAULT_RUNNER,
        sysctl_root: Path = Path("/proc/sys"),
        class_net: Path = Path("/sys/class/net"),
    ) -> None:
        self.state_dir = state_dir
        self.runner = runner
        self.sysctl_root = sysctl_root
        self.class_net = class_net

    # -- the lock ---------------------------------------------------------------------
    def locked(self, timeout: float = LOCK_TIMEOUT):
        """One NIC up or down at a time on this host (their rules must not interleave)."""
        return exclusive_lock(
            self.state_dir / ".lock", timeout=timeout, busy="another NIC script runs", mode=0o644
        )

    # -- commands -----------------------------------------------------------------------
    def run(
        self, argv: list[str], *, input: str | None = None, check: bool = True
    ) -> CompletedCommand:
        return self.runner.run(
            argv, timeout=TIMEOUT, input=None if input is None else input.encode(), check=check
        )

    def retried(self, step: Callable[[], T], what: str) -> T:
        """Run `step` (which reads what it needs itself) up to RETRIES times."""
        for attempt in range(1, RETRIES + 1):
            try:
                return step()
            except CommandError as err:
                if attempt == RETRIES:
                    raise
                log.warning("%s failed (attempt %d), retrying: %s", what, attempt, err)
                time.sleep(0.02 * 2**attempt)
        raise AssertionError("unreachable")

    def nft(self, batch: str) -> None:
        self.run(["nft", "-f", "-"], input=batch)

    def nft_if_present(self, batch: str) -> bool:
        """Apply a batch that deletes something which may be gone already: False (and
        no error) when nft finds nothing to delete."""
        result = self.run(["nft", "-f", "-"], input=batch, check=False)
        if result.returncode == 0:
            return True
        if _ABSENT in result.stderr_text:
            return False
        raise CommandError(result.argv, result.returncode, stderr_tail(result.stderr))

    def ip_batch(
        self, lines: list[str], *, force: bool = False, family: int | None = None
    ) -> CompletedCommand:
        """`ip -batch`; `force` goes on past failures (and never raises), `family` 6 makes
        family-less commands such as `rule` apply to IPv6."""
        argv = ["ip"] + (["-6"] if family == 6 else []) + (["-force"] if force else [])
        return self.run([*argv, "-batch", "-"], input="\n".join(lines) + "\n", check=not force)

    # -- kernel state -------------------------------------------------------------------
    def sysctl(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            path = self.sysctl_root / key
            try:
                path.write_text(value)
            except OSError as err:
                raise GanetiExtError(f"cannot set {path}: {err.strerror}") from None

    def read_sysctl(self, key: str) -> str | None:
        try:
            return (self.sysctl_root / key).read_text().strip()
        except OSError:
            return None

    def link_attr(self, device: str, attr: str) -> str:
        try:
            return (self.class_net / device / attr).read_text().strip()
        except OSError as err:
            raise GanetiExtError(f"{device}: cannot read {attr}: {err.strerror}") from None

    @staticmethod
    def send_frames(device: str, frames: list[bytes]) -> None:
        """Send raw frames on `device` (AF_PACKET, needs CAP_NET_RAW); OSError if not."""
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
            sock.bind((device, 0))
            for frame in frames:
                sock.send(frame)

    @staticmethod
    def exists(device: str) -> bool:
        # if_nametoindex asks the kernel of our own network namespace, whatever /sys shows.
        try:
            socket.if_nametoindex(device)
        except OSError:
            return False
        return True
