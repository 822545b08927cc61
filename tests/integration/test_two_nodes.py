"""A two-node cluster: verify passes and ext instances move between nodes."""

from __future__ import annotations

from instances import add_instance, disk_uuids, loops_of, volume_of

from labkit import settings


def pnode(lab, name: str) -> str:
    return lab.gnt("gnt-instance", "list", "--no-headers", "-o", "pnode", name).stdout.strip()


def test_two_node_cluster_verifies(lab2):
    assert set(lab2.gnt("gnt-node", "list", "--no-headers", "-o", "name").stdout.split()) == {
        settings.NODES[1].name,
        settings.NODES[2].name,
    }
    proc = lab2.gnt(
        "gnt-cluster", "verify", "--error-codes", "--ignore-errors=ENODESETUP", check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kvm_ext_instance_live_migrates_there_and_back(lab2, instance_name):
    name = instance_name()
    add_instance(lab2, name, hypervisor="kvm")
    lab2.wait_console(name, "echo up-$((40+2))", "up-42")
    volume, _ = volume_of(disk_uuids(lab2, name)[0])

    lab2.gnt("gnt-instance", "migrate", "-f", name)
    assert pnode(lab2, name) == settings.NODES[2].name
    out = lab2.wait_console(name, "echo moved-$((40+2))", "moved-42", node=2)
    assert "moved-42" in out
    assert len(loops_of(volume)) == 1, "the old primary detached its loop device"

    lab2.gnt("gnt-instance", "migrate", "-f", name)
    assert pnode(lab2, name) == settings.NODES[1].name
    lab2.wait_console(name, "echo back-$((40+2))", "back-42")


def test_fake_ext_instance_fails_over(lab2, instance_name):
    name = instance_name()
    add_instance(lab2, name, hypervisor="fake")
    lab2.gnt("gnt-instance", "failover", "-f", "--shutdown-timeout=0", name)
    assert pnode(lab2, name) == settings.NODES[2].name
