"""Taking the lab down: Ganeti first, then every lab process by PID, loops, namespaces, files."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from labkit import cluster, hostguard, net, rabbit, settings, xfs
from labkit.sh import LabError, log, pid_alive, run

# Loop devices backed by files under these belong to the lab (ext disks, future stores).
LAB_BACKING_PREFIXES = (
    settings.ARCHIPELAGO_STORE,
    "/srv/ganeti",
    str(settings.STATE_DIR),
    str(settings.CACHE_DIR),
)


def stop_ganeti(nodes_in_cluster: list[str]) -> None:
    """Orderly: instances, secondary nodes, the cluster. Failures are fine: PIDs come next."""
    cluster.remove_all_instances()
    for index, node in settings.NODES.items():
        if index != 1 and node.name in nodes_in_cluster:
            cluster.remove_node(node)
    cluster.destroy_cluster()


def lab_pids() -> list[int]:
    pids: set[int] = set()
    for ns in net.lab_namespaces():
        proc = run(["ip", "netns", "pids", ns], check=False)
        pids.update(int(p) for p in proc.stdout.split() if p.isdigit())
    pids.discard(os.getpid())
    return sorted(pids)


def end_lab_processes(grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL, every process inside a lab namespace: only those."""
    pids = lab_pids()
    for pid in pids:
        log(f"SIGTERM {pid}")
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in lab_pids():
        log(f"SIGKILL {pid}")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Programs only the lab runs on this host; after `down` none may be left (zombies aside).
LAB_PROGRAMS = (
    "ganeti-noded",
    "ganeti-luxid",
    "ganeti-wconfd",
    "ganeti-rapi",
    "ganeti-confd",
    "ganeti-mond",
    "ganeti-metad",
    "ganeti-kvmd",
    "beam.smp",
    "epmd",
    "qemu-system-x86_64",
    "sshd_config-node",
)


def stray_lab_processes() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or not pid_alive(int(entry)):
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as raw:
                cmdline = raw.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(program in cmdline for program in LAB_PROGRAMS):
            found.append(f"{entry} {cmdline[:120]}")
    return found


def lab_loop_devices() -> list[tuple[str, str]]:
    proc = run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)
    found = []
    for line in proc.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[1].startswith(LAB_BACKING_PREFIXES):
            found.append((parts[0], parts[1]))
    return found


def detach_loops(patience: float = 15.0) -> None:
    """Detach the lab's loop devices; the kernel clears a device after its last close
    (an unmounted file system's loop, say) in the background, so wait for it."""
    deadline = time.monotonic() + patience
    while True:
        left = lab_loop_devices()
        if not left:
            return
        if time.monotonic() > deadline:
            raise LabError(f"loop devices still attached: {left}")
        for device, backing in left:
            log(f"detaching {device} ({backing})")
            run(["losetup", "-d", device], check=False)
        time.sleep(0.2)


def teardown() -> None:
    if net.netns_exists(settings.MASTER.netns):
        try:
            if cluster.master_answers():
                stop_ganeti(cluster.node_names())
        except LabError as exc:
            log(f"orderly Ganeti stop failed, ending processes instead: {exc}")
        try:
            rabbit.stop()
        except LabError as exc:
            log(f"rabbitmqctl stop failed, ending processes instead: {exc}")
    end_lab_processes()
    # The store's own loop device goes with its mount; volumes' loops must go first.
    xfs.detach_loops_on(settings.ARCHIPELAGO_XFS_IMAGE)
    try:
        xfs.unmount(Path(settings.ARCHIPELAGO_STORE))
    except LabError as err:  # busy: the rest of the teardown still goes
        log(f"{err}; unmounting it lazily")
        run(["umount", "--lazy", settings.ARCHIPELAGO_STORE], check=False)
    detach_loops()
    net.delete_namespaces()
    hostguard.restore()
    for node in settings.NODES.values():
        shutil.rmtree(net.NETNS_ETC / node.netns, ignore_errors=True)
    shutil.rmtree(settings.STATE_DIR, ignore_errors=True)
    strays = stray_lab_processes()
    if strays:
        raise LabError("lab processes outlived their namespaces:\n" + "\n".join(strays))
