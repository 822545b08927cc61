"""What every task gets: its configuration, the disk, the guest once mounted, a way to
run the helper's own tools, and the line protocol back to the host.

Protocol (one line each, on the helper's second serial port, read by the host with
length, count and time bounds): `TASK_START <name>`, `TASK_END <name>`,
`WARNING <text>`, `INFO <text>`, then exactly one of `DONE` or `ERROR <text>`.
No dataclasses or typing here: every import costs time in an emulated CPU.
"""

from __future__ import annotations

import os
import subprocess

MAX_TEXT = 400  # the host cuts lines at 512 bytes; keep well under it
COMMAND_TIMEOUT = 600


class TaskError(Exception):
    """The task cannot do its job; the message says why (it ends the deployment)."""


class Reporter:
    def __init__(self, stream) -> None:
        self.stream = stream

    def line(self, kind: str, text: str = "") -> None:
        text = " ".join(text.split())[:MAX_TEXT]
        self.stream.write(f"{kind} {text}".rstrip() + "\n")
        self.stream.flush()

    def warning(self, text: str) -> None:
        self.line("WARNING", text)

    def info(self, text: str) -> None:
        self.line("INFO", text)


class System:
    """Runs the helper's tools (never the image's): argv lists, no shell, bounded time."""

    def __init__(self, env: dict | None = None) -> None:
        self.env = env or {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}

    def run(self, argv: list, *, input: str | None = None, ok=(0,), timeout=COMMAND_TIMEOUT):
        try:
            proc = subprocess.run(
                argv,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
        except FileNotFoundError:
            raise TaskError(f"{argv[0]} is missing from the helper") from None
        except subprocess.TimeoutExpired:
            raise TaskError(f"{argv[0]} did not finish within {timeout} s") from None
        if proc.returncode not in ok:
            tail = " | ".join(
                line.strip() for line in proc.stderr.splitlines()[-3:] if line.strip()
            )
            raise TaskError(f"{' '.join(argv[:3])} failed (exit {proc.returncode}): {tail}")
        return proc


class Context:
    """Shared state of one deployment's tasks (the guest is set by MountImage)."""

    def __init__(self, config: dict, disk: str, system: System, report: Reporter) -> None:
        self.config = config
        self.disk = disk
        self.system = system
        self.report = report
        self.properties = {k.upper(): str(v) for k, v in config.get("properties", {}).items()}
        self.guest = None
        self.mountpoint = config.get("mountpoint", "/mnt/guest")
        self.root_partition = None  # e.g. /dev/vda1, found once
        self.root_fs = None  # ext4, xfs or btrfs

    def property(self, name: str, default: str = "") -> str:
        return self.properties.get(name.upper(), default)

    def flag(self, name: str) -> bool:
        return self.property(name).strip().lower() in ("1", "yes", "true", "on")

    def require_guest(self):
        if self.guest is None:
            raise TaskError("the image is not mounted (MountImage did not run)")
        return self.guest


def partition_path(disk: str, number: int) -> str:
    """/dev/vda + 1 -> /dev/vda1; /dev/nvme0n1 + 1 -> /dev/nvme0n1p1."""
    return f"{disk}p{number}" if disk[-1:].isdigit() else f"{disk}{number}"


def exists(path: str) -> bool:
    return os.path.exists(path)
