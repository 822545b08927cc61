"""The lab survives being killed mid-way, and `down` leaves nothing behind.

Runs last: it kills the lab's processes the way a dead CI machine would, lets `up`
repair it, takes it down, checks the host, and brings it back for whoever comes next.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import pytest

from labkit import health, net, settings, teardown

LAB = [str(settings.REPO_DIR / "lab")]


def lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAB, *args], capture_output=True, text=True, timeout=1800)


@pytest.mark.last
def test_up_repairs_a_lab_whose_processes_were_killed(lab):
    nodes = health.recorded_nodes()
    for pid in teardown.lab_pids():
        # A short-lived one (a Ganeti job's child) may end between the listing and the
        # kill: gone is what the kill wants.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not health.assess().healthy

    proc = lab_cli("up")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "clear a half-dead lab" in proc.stdout
    state = health.assess()
    assert state.healthy, state.problems()
    assert state.nodes == nodes


@pytest.mark.last
def test_down_leaves_no_namespace_loop_or_process_and_is_safe_twice(lab):
    nodes = health.recorded_nodes()
    try:
        for _ in range(2):
            proc = lab_cli("down")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            assert net.lab_namespaces() == []
            assert teardown.lab_loop_devices() == []
            assert teardown.stray_lab_processes() == []
            assert not settings.STATE_DIR.exists()
            assert not os.path.exists("/var/lib/ganeti/config.data")
        assert lab_cli("status").returncode == 3
    finally:
        proc = lab_cli("up", "--nodes", str(max(nodes, 1)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
