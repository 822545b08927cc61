"""What state the lab is in: absent, healthy, or half-dead (to be rebuilt)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labkit import cluster, hostguard, net, rabbit, settings
from labkit.sh import LabError, sshd_pid


@dataclass
class LabState:
    nodes: int = 0
    checks: dict[str, bool] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def absent(self) -> bool:
        return not any(self.checks.values()) and not self.leftovers

    def problems(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]


def recorded_nodes() -> int:
    try:
        return int(settings.NODES_FILE.read_text())
    except (OSError, ValueError):
        return 0


def _cluster_nodes() -> list[str]:
    try:
        return cluster.node_names()
    except LabError:
        return []


def assess() -> LabState:
    state = LabState(nodes=recorded_nodes())
    expected = [settings.NODES[i] for i in range(1, max(state.nodes, 1) + 1)]
    for node in expected:
        state.checks[f"namespace {node.netns}"] = net.netns_exists(node.netns)
        state.checks[f"sshd on {node.short}"] = sshd_pid(node) is not None
    master_ns = state.checks[f"namespace {settings.MASTER.netns}"]
    master_ok = master_ns and cluster.master_answers()
    state.checks["Ganeti master answers"] = master_ok
    state.checks["RabbitMQ running"] = master_ns and rabbit.running()
    state.checks["archipelago store on XFS"] = cluster.store_ready()
    if master_ok and state.nodes > 1:
        names = _cluster_nodes()
        for node in expected:
            state.checks[f"{node.short} in the cluster"] = node.name in names
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
