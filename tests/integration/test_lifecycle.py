"""A VM's whole life on a real Debian 12 image, on the two-node lab, every step seen on AMQP.

create (a clone of the image, personalized with a key) -> boot from its own disk -> DHCP
lease from nfdhcpd -> ssh with the key, hostname = instance name -> firewall profiles hold
across a tag change and a reboot -> a file written in the guest -> snapshot of the running
disk -> a second VM from the snapshot has the file -> live migration to node 2 with an
ssh session kept open -> reboot -> remove both -> gc gives their own blocks back.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import tempfile
import time
import uuid

import pytest
from amqp_capture import Capture
from instances import archipelago, disk_uuids, volume_of

from labkit import settings, vms

TAG = "synnefo:network:0:{}"
LIFE_ORDER = ("queued", "waiting", "running", "success")
CREATE, REBOOT, MIGRATE, REMOVE = (
    "OP_INSTANCE_CREATE", "OP_INSTANCE_REBOOT", "OP_INSTANCE_MIGRATE", "OP_INSTANCE_REMOVE"
)  # fmt: skip
RETAG = ["OP_TAGS_DEL", "OP_TAGS_SET", REBOOT]  # set_profile


class LifeCapture(Capture):
    """Every op and progress message about instances `snf-*` on the lab's broker."""

    def __init__(self, lab) -> None:
        super().__init__(lab, "ganeti.snf.event.#", "itest-life")

    def ops(self, instance: str, operation: str) -> list[str]:
        return [
            m["status"]
            for m in self.messages
            if m["type"] == "ganeti-op-status" and m["instance"] == instance
            and m["operation"] == operation
        ]  # fmt: skip

    def wait_op(self, instance: str, operation: str, timeout: float = 60) -> list[str]:
        def final(_key: str, body: dict) -> bool:
            statuses = self.ops(instance, operation)
            return bool(statuses) and statuses[-1] in ("success", "error")

        self.wait(f"final status of {operation} of {instance}", final, timeout)
        return self.ops(instance, operation)

    def journal(self, instance: str) -> list[tuple[str, list[str]]]:
        """(operation, statuses in arrival order) of every job about `instance`, by job id."""
        jobs: dict[int, tuple[str, list[str]]] = {}
        for m in self.messages:
            if m["type"] == "ganeti-op-status" and m["instance"] == instance:
                jobs.setdefault(m["jobId"], (m["operation"], []))[1].append(m["status"])
        return [jobs[job_id] for job_id in sorted(jobs)]


def add(lab, name: str, origin: str, tag: str, node: int = 1) -> str:
    argv = vms.add_argv(
        name, origin, node=settings.NODES[node], backend=vms.DEBIAN_BACKEND, profile=tag,
        password=uuid.uuid4().hex,
    )  # fmt: skip
    lab.gnt(*argv, timeout=900)
    return lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.ip/0", name).stdout.strip()


def set_profile(lab, name: str, old: str, new: str) -> None:
    lab.gnt("gnt-instance", "remove-tags", name, TAG.format(old))
    lab.gnt("gnt-instance", "add-tags", name, TAG.format(new))
    lab.gnt("gnt-instance", "reboot", "--shutdown-timeout=60", name, timeout=600)


def ssh_dropped(node, ip: str) -> bool:
    """A new ssh connection times out: its SYN was dropped (refused would mean it got in)."""
    proc = vms.ssh(node, ip, "true", timeout=30)
    return proc.returncode == 255 and "timed out" in proc.stderr


def after_move(lab, name: str, ip: str) -> str:
    """For a failure message after a migration: who still reaches the VM, and where each
    node's bridge thinks its MAC is (a stale entry would point at the other node)."""
    mac = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.mac/0", name).stdout.strip()
    found = []
    for index, node in settings.NODES.items():
        fdb = lab.run(["bridge", "fdb", "show", "br", settings.BRIDGE], node=index, check=False)
        where = [line for line in fdb.stdout.splitlines() if line.startswith(mac)]
        ports = lab.run(["ip", "-s", "-o", "link", "show", "master", settings.BRIDGE],
                        node=index, check=False).stdout  # fmt: skip
        found.append(f"{node.short}: ping {vms.pings(node, ip)}, fdb {where}, ports {ports!r}")
    pnode = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "pnode", name).stdout.strip()
    index = next(i for i, node in settings.NODES.items() if node.name == pnode)
    # Whether qemu runs the guest at all, and whether the guest answers its console.
    monitor = f"/run/ganeti/kvm-hypervisor/ctrl/{name}.monitor"
    status = lab.run(
        ["sh", "-c", f"echo 'info status' | timeout 10 socat - UNIX-CONNECT:{monitor}"],
        node=index,
        check=False,
    )
    found.append(f"qemu on {pnode}: {status.stdout.strip()!r} {status.stderr.strip()!r}")
    found.append(f"console: {lab.console(name, [''], node=index)[-300:]!r}")
    return "; ".join(found)


class Ticker:
    """An ssh session into a VM printing a counter every 0.5 s, read with deadlines."""

    def __init__(self, argv: list[str]) -> None:
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.errors)
        self.values: list[int] = []
        self._partial = b""

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.proc.stdout], [], [], wait)
        chunk = os.read(self.proc.stdout.fileno(), 65536) if ready else b""
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        self.values += [int(line) for line in lines if line.strip()]
        return bool(chunk)

    def drain(self) -> None:
        """Take in everything the session printed so far."""
        while self._read(0):
            pass

    def newer(self, wait: float) -> bool:
        """Whether a value newer than all taken in arrives within `wait` seconds."""
        self.drain()
        last = self.values[-1] if self.values else 0
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if (
                not self._read(max(0.0, deadline - time.monotonic()))
                and self.proc.poll() is not None
            ):
                return False  # the session ended
            if self.values and self.values[-1] > last:
                return True
        return False

    def state(self) -> str:
        """For a failure message: the last values, whether ssh still runs, what it said."""
        self.errors.seek(0)
        said = self.errors.read().decode(errors="replace").strip()
        return f"last values {self.values[-3:]}, ssh exit {self.proc.poll()}, stderr {said!r}"

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.errors.close()


@pytest.fixture
def capture(lab2):
    events = LifeCapture(lab2)
    yield events
    events.close()


@pytest.fixture
def snapshots():
    """Names of snapshots the test takes; removed after it, whatever happened."""
    names: list[str] = []
    yield names
    for name in names:
        archipelago("snapshot", "remove", name, check=False)


def test_a_vms_whole_life(lab2, instance_name, capture, snapshots):
    node1, node2 = settings.NODES[1], settings.NODES[2]
    image = vms.debian_image_name()
    first = instance_name()

    ip = add(lab2, first, image, "limited")
    assert capture.wait_op(first, "OP_INSTANCE_CREATE")[-1] == "success"
    vms.wait_for("a DHCP lease (the VM answers ping)", lambda: vms.pings(node1, ip), 180)
    assert vms.wait_ssh(node1, ip) == first, "the key works and the hostname is the instance's"

    # The profile filters what the network sends the VM: node 2 is the network here (the
    # node's own traffic to its VMs on the bridge is not forwarded, so not filtered).
    set_profile(lab2, first, "limited", "protected")
    vms.wait_for("ping from node 2 (protected admits ICMP)", lambda: vms.pings(node2, ip), 240)
    assert vms.wait_ssh(node1, ip, 240) == first, "sshd is up after the reboot"
    assert ssh_dropped(node2, ip), "protected drops new TCP 22 from the network"
    set_profile(lab2, first, "protected", "limited")
    assert vms.wait_ssh(node2, ip, 240) == first, "limited admits TCP 22 again"
    assert capture.wait_op(first, "OP_INSTANCE_REBOOT")[-1] == "success"

    proof = uuid.uuid4().hex
    assert vms.ssh(node1, ip, f"echo {proof} > /root/proof && sync").returncode == 0
    volume = volume_of(disk_uuids(lab2, first)[0])[0].parent.name
    snapshot = f"life-{proof[:8]}"
    snapshots.append(snapshot)
    archipelago("snapshot", "create", volume, snapshot, "--wait")

    second = instance_name()
    ip2 = add(lab2, second, snapshot, "limited", node=2)
    assert vms.wait_ssh(node2, ip2) == second
    assert vms.ssh(node2, ip2, "cat /root/proof").stdout.strip() == proof

    session = Ticker(vms.ssh_argv(node1, ip, "i=0; while sleep 0.5; do i=$((i+1)); echo $i; done"))
    try:
        assert session.newer(30), f"the session ticks before the move: {session.state()}"
        lab2.gnt("gnt-instance", "migrate", "-f", first, timeout=900)
        pnode = lab2.gnt("gnt-instance", "list", "--no-headers", "-o", "pnode", first).stdout
        assert pnode.strip() == node2.name
        assert session.newer(60), (
            f"the same session ticks on after the move: {session.state()};"
            f" {after_move(lab2, first, ip)}"
        )
        first_value = session.values[0]
        assert session.values == list(range(first_value, first_value + len(session.values)))
    finally:
        session.close()
    assert capture.wait_op(first, "OP_INSTANCE_MIGRATE")[-1] == "success"

    lab2.gnt("gnt-instance", "reboot", "--shutdown-timeout=60", first, timeout=600)
    assert vms.wait_ssh(node2, ip, 240) == first

    for name in (first, second):
        lab2.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=60", name, timeout=600)
        assert capture.wait_op(name, "OP_INSTANCE_REMOVE")[-1] == "success"
    archipelago("snapshot", "remove", snapshot)
    snapshots.remove(snapshot)
    collected = json.loads(archipelago("gc", "--json").stdout)
    assert collected["blocks_removed"] > 0, "the VMs' own blocks were given back"
    expected = {
        first: [CREATE, *RETAG, *RETAG, MIGRATE, REBOOT, REMOVE],
        second: [CREATE, REMOVE],
    }
    for name, operations in expected.items():
        jobs = capture.journal(name)
        assert [operation for operation, _ in jobs] == operations, jobs
        for operation, statuses in jobs:
            in_order = [status for status in LIFE_ORDER if status in statuses]
            assert statuses == in_order, f"{operation} of {name}: {statuses}"
            assert statuses[0] == "queued" and "running" in statuses, (operation, statuses)
            assert statuses[-1] == "success", (operation, statuses)
    tasks = {(m["instance"], m.get("subtype"), m.get("task")) for m in capture.messages}
    for name in (first, second):
        assert {(name, "task-end", "AssignHostname"), (name, "task-end", "ChangePassword")} <= tasks
