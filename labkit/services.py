"""Running the suite's daemons in the lab the way systemd would, from their installed units.

The lab has no systemd (PID 1 is not systemd here), so the lab reads each unit's
ExecStart and EnvironmentFile and starts that very command line in a node's namespace.
That also tests the unit file the package ships.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from labkit import settings
from labkit.settings import Node
from labkit.sh import LabError, in_node, log, read_pidfile

UNIT_DIRS = (
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
    Path("/etc/systemd/system"),
)
_VAR = re.compile(r"\$\{(\w+)\}|\$(\w+)")
READY_TIMEOUT = 60.0  # seconds for a Type=notify daemon to say READY=1


def unit_file(service: str) -> Path | None:
    for directory in reversed(UNIT_DIRS):  # /etc overrides the package's unit
        path = directory / f"{service}.service"
        if path.exists():
            return path
    return None


def parse_env_file(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


def command_line(unit_text: str) -> tuple[list[str], dict[str, str]]:
    """ExecStart of a unit as argv, with its EnvironmentFile and Environment applied."""
    env: dict[str, str] = {}
    exec_start = None
    for line in unit_text.splitlines():
        key, _, value = line.strip().partition("=")
        if key == "EnvironmentFile":
            optional = value.startswith("-")
            path = Path(value.lstrip("-"))
            if path.exists():
                env.update(parse_env_file(path.read_text()))
            elif not optional:
                raise LabError(f"unit needs {path}, which does not exist")
        elif key == "Environment":
            for item in shlex.split(value):
                name, _, val = item.partition("=")
                env[name] = val
        elif key == "ExecStart":
            exec_start = value.lstrip("-@+!")
    if not exec_start:
        raise LabError("unit has no ExecStart")
    argv: list[str] = []
    for word in shlex.split(exec_start):
        # systemd: a lone $VAR splits into words, ${VAR} inside a word does not.
        whole = _VAR.fullmatch(word)
        if whole and word.startswith("$") and not word.startswith("${"):
            argv.extend(env.get(whole.group(2), "").split())
        else:
            argv.append(_VAR.sub(lambda m: env.get(m.group(1) or m.group(2), ""), word))
    return argv, env


def exec_lines(unit_text: str, key: str) -> list[list[str]]:
    """The unit's ExecStartPre/ExecStopPost commands (no variables), as argv lists."""
    return [
        shlex.split(value.lstrip("-@+!"))
        for key_, _, value in (line.strip().partition("=") for line in unit_text.splitlines())
        if key_ == key
    ]


def _pidfile(service: str, node: Node) -> Path:
    return settings.RUN_DIR / f"{service}-{node.short}.pid"


def running(service: str, node: Node) -> int | None:
    return read_pidfile(_pidfile(service, node))


def start(service: str, node: Node) -> int:
    pid = running(service, node)
    if pid:
        return pid
    unit = unit_file(service)
    if unit is None:
        raise LabError(f"{service} has no systemd unit installed")
    unit_text = unit.read_text()
    argv, env = command_line(unit_text)
    for pre in exec_lines(unit_text, "ExecStartPre"):  # e.g. nfdhcpd-rules up
        log(f"{service} on {node.short}: {shlex.join(pre)}")
        subprocess.run(in_node(node, pre), check=True, capture_output=True, timeout=60)
    settings.RUN_DIR.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        notify = None
        if _unit_value(unit_text, "Type") == "notify":
            # As systemd does: the daemon says READY=1 on this socket once it serves.
            notify = cleanup.enter_context(_notify_socket(service, node))
            env["NOTIFY_SOCKET"] = notify.getsockname()
        wrapped = in_node(node, ["env", *(f"{k}={v}" for k, v in env.items()), *argv])
        log(f"starting {service} on {node.short}: {shlex.join(wrapped)}")
        out_path = settings.STATE_DIR / f"{service}-{node.short}.out"
        with open(out_path, "ab") as out:
            proc = subprocess.Popen(
                wrapped, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
            )
        _pidfile(service, node).write_text(f"{proc.pid}\n")
        if notify is not None:
            _await_ready(service, proc, notify, out_path)
        elif proc.poll() is not None:
            raise LabError(f"{service} exited at once with {proc.returncode} (see {out_path})")
    return proc.pid


def _unit_value(unit_text: str, key: str) -> str | None:
    for line in unit_text.splitlines():
        name, _, value = line.strip().partition("=")
        if name == key:
            return value.strip()
    return None


@contextlib.contextmanager
def _notify_socket(service: str, node: Node) -> Iterator[socket.socket]:
    path = settings.RUN_DIR / f"notify-{service}-{node.short}.sock"
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(str(path))
        path.chmod(0o666)  # a daemon that dropped root still reaches it
        yield sock
    finally:
        sock.close()
        path.unlink(missing_ok=True)


def _await_ready(service: str, proc: subprocess.Popen, sock: socket.socket, out: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"{service} exited with {proc.returncode} before ready (see {out})")
        try:
            message = sock.recv(4096).decode(errors="replace")
        except TimeoutError:
            continue
        if "READY=1" in message.split("\n"):
            log(f"{service} is ready: {message.replace(chr(10), '; ')}")
            return
    raise LabError(f"{service} did not say READY=1 within {READY_TIMEOUT:.0f} s (see {out})")


def stop(service: str, node: Node, timeout: float = 10) -> None:
    pid = running(service, node)
    if pid:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and read_pidfile(_pidfile(service, node)):
            time.sleep(0.1)
        if read_pidfile(_pidfile(service, node)):
            os.kill(pid, signal.SIGKILL)
    _pidfile(service, node).unlink(missing_ok=True)
