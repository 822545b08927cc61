"""What up configured for each tap, kept so down (and hooks) undo exactly that.

One JSON file per tap in STATE_DIR, written atomically. It holds the NIC's environment
too, so a hook can re-apply a NIC (new firewall profile) without Ganeti re-running it.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ganeti_ext.network.links import RoutedSetup

SUFFIX = ".json"


@dataclass(frozen=True)
class TapState:
    tap: str
    instance: str | None
    mode: str
    profile: str | None
    binding: bool
    routed: RoutedSetup | None = None
    env: dict[str, str] = field(default_factory=dict)
    masq: tuple[str, str] | None = None  # (IPv4, own interface) in the masq sets

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TapState:
        data = json.loads(text)
        routed = data.get("routed")
        if routed is not None:
            routed = RoutedSetup(
                table=routed["table"],
                routes=tuple(routed["routes"]),
                tap_proxies=tuple(routed["tap_proxies"]),
                uplink_proxies=tuple(tuple(pair) for pair in routed["uplink_proxies"]),
            )
        return cls(
            tap=data["tap"],
            instance=data.get("instance"),
            mode=data["mode"],
            profile=data.get("profile"),
            binding=bool(data.get("binding")),
            routed=routed,
            env=dict(data.get("env") or {}),
            masq=tuple(data["masq"]) if data.get("masq") else None,
        )


def path_of(directory: Path, tap: str) -> Path:
    return directory / f"{tap}{SUFFIX}"


def load(directory: Path, tap: str) -> TapState | None:
    try:
        return TapState.from_json(path_of(directory, tap).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # a torn or foreign file: down still removes what it can by name


def save(directory: Path, state: TapState) -> None:
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    final = path_of(directory, state.tap)
    tmp = directory / f".{state.tap}.{os.getpid()}.tmp"
    tmp.write_text(state.to_json(), encoding="utf-8")
    os.replace(tmp, final)


def remove(directory: Path, tap: str) -> None:
    try:
        path_of(directory, tap).unlink()
    except FileNotFoundError:
        pass


def taps(directory: Path) -> list[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(n[: -len(SUFFIX)] for n in names if n.endswith(SUFFIX) and not n.startswith("."))
