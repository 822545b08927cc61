"""Helpers for the unit tests: captured fixtures and a fake losetup."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ganeti_ext.environ.reader import read_env_file
from ganeti_ext.errors import CommandError
from ganeti_ext.runner import CompletedCommand

DATA = Path(__file__).resolve().parent.parent / "data"
REPO = DATA.parent.parent


def env_fixture(name: str) -> dict[str, str]:
    """A captured environment from tests/data/env/<name>.env."""
    return read_env_file((DATA / "env" / f"{name}.env").read_text())


def env_with(name: str, **changes: str | None) -> dict[str, str]:
    """env_fixture(name) with values replaced; None removes a variable, which must be
    there (a row that removes nothing would pass for the wrong reason)."""
    env = env_fixture(name)
    for variable, value in changes.items():
        if value is None:
            env.pop(variable)
        else:
            env[variable] = value
    return env


def uncomment_documented(text: str) -> str:
    """A shipped config file with every documented `#key = value` line uncommented
    (prose comments, `# ...`, stay): what the file promises, made live."""
    lines = [
        line[1:] if line.startswith("#") and " = " in line and not line.startswith("# ") else line
        for line in text.splitlines()
    ]
    return "\n".join(lines) + "\n"


def data_text(relative: str) -> str:
    return (DATA / relative).read_text()


class FakeLosetup:
    """Stands in for losetup: keeps loop devices in memory, answers in losetup's formats.

    Devices are matched to files by (st_dev, st_ino), as the real `losetup --associated`
    does, and a device whose file was deleted shows "(deleted)" in the JSON list.
    """

    def __init__(self) -> None:
        self.devices: dict[str, dict] = {}
        self.calls: list[list[str]] = []

    def _ok(self, argv: Sequence[str], stdout: str = "") -> CompletedCommand:
        return CompletedCommand(tuple(argv), 0, stdout.encode(), b"")

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> CompletedCommand:
        assert argv[0] == "losetup" and timeout > 0
        self.calls.append(list(argv))
        option, target = argv[1], argv[-1]
        if option == "--associated":
            st = os.stat(target)
            lines = [
                f"{dev}: [{st.st_dev}]:{st.st_ino} ({info['path']})"
                for dev, info in self.devices.items()
                if info["key"] == (st.st_dev, st.st_ino)
            ]
            return self._ok(argv, "".join(line + "\n" for line in lines))
        if option == "--list":
            if not self.devices:
                return self._ok(argv)
            entries = []
            for dev, info in self.devices.items():
                alive = os.path.exists(info["path"]) and _key(info["path"]) == info["key"]
                back = info["path"] if alive else info["path"] + " (deleted)"
                entries.append({"name": dev, "back-file": back})
            return self._ok(argv, json.dumps({"loopdevices": entries}, indent=3) + "\n")
        if option == "--find":
            if not os.path.exists(target):
                raise CommandError(argv, 1, f"losetup: {target}: failed to set up loop device")
            dev = next(f"/dev/loop{n}" for n in range(64) if f"/dev/loop{n}" not in self.devices)
            self.devices[dev] = {
                "path": os.path.realpath(target),
                "key": _key(target),
                "read_only": "--read-only" in argv,
                "direct_io": "--direct-io=on" in argv,
            }
            return self._ok(argv, dev + "\n")
        if option in ("--detach", "--set-capacity"):
            if target not in self.devices:
                verb = "detach" if option == "--detach" else "set capacity"
                raise CommandError(
                    argv, 1, f"losetup: {target}: {verb} failed: No such device or address"
                )
            if option == "--detach":
                del self.devices[target]
            return self._ok(argv)
        raise AssertionError(f"unexpected losetup call {argv}")

    def attached(self, path: Path) -> list[str]:
        return [dev for dev, info in self.devices.items() if info["path"] == str(path)]


def _key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)
