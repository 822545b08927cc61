"""The lab's one place that runs commands: logged to the lab log, with timeouts and clear errors."""

from __future__ import annotations

import os
import secrets
import select
import shlex
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from labkit import settings


class LabError(Exception):
    """An expected failure of a lab step: its message says what went wrong."""


def _log(text: str) -> None:
    with open(settings.LOG_FILE, "a", encoding="utf-8") as log:
        log.write(text if text.endswith("\n") else text + "\n")


def log(text: str) -> None:
    _log(f"{time.strftime('%H:%M:%S')} {text}")


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(
    argv: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    cwd: os.PathLike[str] | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run argv; raise LabError naming the command, its exit code and stderr's tail."""
    argv = [str(arg) for arg in argv]
    pretty = shlex.join(argv)
    log(f"$ {pretty}")
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=input,
            text=True,
            capture_output=capture,
            stdin=None if input is not None else subprocess.DEVNULL,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            start_new_session=True,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"`{pretty}` timed out after {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise LabError(f"`{argv[0]}` is not installed") from exc
    elapsed = time.monotonic() - started
    if capture:
        out = (proc.stdout or "") + (proc.stderr or "")
        if out.strip():
            _log(out)
    log(f"  -> exit {proc.returncode} in {elapsed:.1f} s")
    if check:
        checked(proc)
    return proc


def checked(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """proc, or LabError naming its command, exit code and output's tail when it failed."""
    if proc.returncode != 0:
        detail = _tail((proc.stderr or "") + (proc.stdout or ""))
        pretty = shlex.join(str(arg) for arg in proc.args)
        raise LabError(f"`{pretty}` exited {proc.returncode}" + (f":\n{detail}" if detail else ""))
    return proc


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment Ganeti's daemons see: nothing inherited from the caller."""
    env = {"PATH": settings.CLEAN_PATH, "LANG": "C.UTF-8", "HOME": "/root"}
    env.update(extra or {})
    return env


def in_node(node: settings.Node, argv: Sequence[str]) -> list[str]:
    """argv wrapped to run on a lab node: its netns, its mounts, a clean environment."""
    if node.index == 1:
        enter = ["ip", "netns", "exec", node.netns]
    else:
        pid = sshd_pid(node)
        if pid is None:
            raise LabError(f"{node.name} is not running (no sshd); run `./lab up --nodes 2`")
        # -r: the node's root directory too. Entering a mount namespace resets the root
        # to that namespace's own, which escapes a chroot the lab itself may run in.
        enter = ["nsenter", "-t", str(pid), "-m", "-n", "-r"]
    env_args = [f"{key}={value}" for key, value in clean_env().items()]
    return ["env", "-i", *env_args, *enter, *argv]


def on_node(node: settings.Node, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return run(in_node(node, argv), **kwargs)


def on_master(argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return on_node(settings.MASTER, argv, **kwargs)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def read_pidfile(path: os.PathLike[str] | str) -> int | None:
    try:
        with open(path, encoding="ascii") as pidfile:
            pid = int(pidfile.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def sshd_pid(node: settings.Node) -> int | None:
    return read_pidfile(node.sshd_pidfile)


def stored_secret(path: Path) -> str:
    """A random password kept in a root-only file of the lab (made on first use)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Hex: a password that begins with "-" reads as an option to rabbitmqctl.
        path.write_text(secrets.token_hex(18))
        path.chmod(0o600)
    return path.read_text().strip()


def await_line(proc: subprocess.Popen, stream, marker: str, timeout: float = 60) -> str:
    """Read `proc`'s text `stream` line by line until one holds `marker` (a readiness
    line, e.g. snf-events tail's "listening"); what it said so far. LabError when it
    ends or stays silent for `timeout` seconds first."""
    said = ""
    deadline = time.monotonic() + timeout
    while marker not in said:
        ready, _, _ = select.select([stream], [], [], max(0.0, deadline - time.monotonic()))
        line = stream.readline() if ready else ""
        if not line and (not ready or proc.poll() is not None):
            raise LabError(f"no {marker!r} line within {timeout:.0f} s; it said: {said!r}")
        said += line
    return said
