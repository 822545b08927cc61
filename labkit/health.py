"""What state the lab is in: absent, healthy, or half-dead (to be rebuilt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labkit import cluster, hostguard, net, rabbit, settings
from labkit.sh import sshd_pid


@dataclass
class LabState:
    checks: dict[str, bool] = field(default_factory=dict)
    nodes: int = 0

    @property
    def healthy(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def absent(self) -> bool:
        return not any(self.checks.values()) and not self.leftovers

    leftovers: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


def recorded_nodes() -> int:
    try:
        return int(settings.NODES_FILE.read_text())
    except (OSError, ValueError):
        return 0


def assess() -> LabState:
    state = LabState()
    state.nodes = recorded_nodes()
    expected = range(1, max(state.nodes, 1) + 1)
    for index in expected:
        node = settings.NODES[index]
        state.checks[f"namespace {node.netns}"] = net.netns_exists(node.netns)
        state.checks[f"sshd on {node.short}"] = sshd_pid(node) is not None
    if state.checks[f"namespace {settings.MASTER.netns}"]:
        state.checks["Ganeti master answers"] = cluster.master_answers()
        state.checks["RabbitMQ running"] = rabbit.running()
        if state.checks["Ganeti master answers"] and state.nodes > 1:
            names = cluster.node_names()
            for index in expected:
                node = settings.NODES[index]
                state.checks[f"{node.short} in the cluster"] = node.name in names
    else:
        state.checks["Ganeti master answers"] = False
    if state.nodes == 0:
        # No record of a finished bring-up: anything found is a leftover.
        state.checks["lab recorded as up"] = False
    for path, what in (
        (Path("/var/lib/ganeti/config.data"), "Ganeti cluster config"),
        (hostguard.MANIFEST, "host record of an earlier lab"),
    ):
        if path.exists():
            state.leftovers.append(f"{what} ({path})")
    state.leftovers.extend(f"namespace {ns}" for ns in net.lab_namespaces())
    return state
