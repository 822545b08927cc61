"""Preparing the host: Debian packages, the lint tool, kernel switches the lab needs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from labkit import settings
from labkit.sh import LabError, run

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def missing_packages(names: Iterable[str]) -> list[str]:
    names = list(names)
    proc = run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", *names], check=False)
    installed = {
        line.split()[0]
        for line in proc.stdout.splitlines()
        if len(line.split()) > 1 and line.split()[1].startswith("ii")
    }
    return [name for name in names if name not in installed]


@contextmanager
def services_held() -> Iterator[None]:
    """Stop package scripts from starting services (ganeti, rabbitmq) on the host network."""
    if POLICY_RC_D.exists():
        yield
        return
    POLICY_RC_D.write_text(
        "#!/bin/sh\n# ganeti-ext lab: no service starts during apt runs\nexit 101\n"
    )
    POLICY_RC_D.chmod(0o755)
    try:
        yield
    finally:
        POLICY_RC_D.unlink(missing_ok=True)


def _apt_lists_fresh() -> bool:
    lists = Path("/var/lib/apt/lists")
    newest = max((p.stat().st_mtime for p in lists.glob("*_Packages")), default=0)
    return time.time() - newest < 24 * 3600


APT_ENV = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def apt_install(args: Iterable[str], *, timeout: float = 1800) -> None:
    with services_held():
        run(
            # A configuration file the lab changed (labkit/suiteconf.py) and the package
            # changed too is kept as the lab has it, as an unattended upgrade would.
            ["apt-get", "install", "-y", "-q", "--no-install-recommends",
             "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold",
             *args],
            env=APT_ENV,
            timeout=timeout,
        )  # fmt: skip


def ensure_packages(names: Iterable[str]) -> list[str]:
    """Install what is missing; returns the names installed."""
    missing = missing_packages(names)
    if not missing:
        return []
    if not _apt_lists_fresh():
        run(["apt-get", "update", "-q"], env=APT_ENV, timeout=600)
    apt_install(missing)
    still = missing_packages(missing)
    if still:
        raise LabError(f"apt-get could not install: {' '.join(still)}")
    return missing


def ensure_lint_tool() -> Path:
    """ruff is not in Debian 12: it lives in a venv of its own under the lab cache."""
    ruff = settings.TOOLS_VENV / "bin" / "ruff"
    if ruff.exists():
        proc = run([ruff, "--version"], check=False)
        if proc.returncode == 0 and settings.RUFF_VERSION in proc.stdout:
            return ruff
    run(["/usr/bin/python3", "-m", "venv", "--clear", settings.TOOLS_VENV], timeout=300)
    run(
        [settings.TOOLS_VENV / "bin" / "pip", "install", "-q", f"ruff=={settings.RUFF_VERSION}"],
        timeout=600,
    )
    return ruff


def ensure_kernel_switches() -> None:
    """Modules the lab's networking needs (bridge netfilter for NIC firewalling, loop)."""
    for module in ("br_netfilter", "loop", "tun"):
        run(["modprobe", module], check=False)
    if not Path("/dev/net/tun").exists():
        raise LabError("/dev/net/tun is missing: this kernel cannot create taps for guests")
