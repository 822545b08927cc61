"""The archipelago ExtStorage provider under real Ganeti jobs."""

from __future__ import annotations

from instances import add_instance, disk_uuids, loops_of, volume_of


def test_ext_instance_lifecycle_creates_grows_and_removes_its_volume(lab, instance_name):
    name = instance_name()
    add_instance(lab, name, disk_size="64M")
    volume, meta = volume_of(disk_uuids(lab, name)[0])
    assert volume.stat().st_size == 64 * 2**20
    assert meta["metadata"] == f"originstname+{name}"
    assert len(loops_of(volume)) == 1, "attached exactly once while running"

    lab.gnt("gnt-instance", "grow-disk", "--absolute", name, "0", "96M")
    assert volume.stat().st_size == 96 * 2**20
    assert (
        lab.gnt("gnt-instance", "list", "--no-headers", "-o", "disk.sizes", name).stdout.strip()
        == "96"
    )

    lab.gnt("gnt-instance", "shutdown", "--timeout=0", name)
    lab.gnt("gnt-instance", "activate-disks", name)
    lab.gnt("gnt-instance", "deactivate-disks", name)
    assert loops_of(volume) == [], "deactivate-disks detaches the loop device"

    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert not volume.exists()
    assert loops_of(volume) == []


def test_grow_refuses_to_shrink(lab, instance_name):
    name = instance_name()
    add_instance(lab, name, disk_size="64M")
    proc = lab.gnt("gnt-instance", "grow-disk", "--absolute", name, "0", "32M", check=False)
    assert proc.returncode != 0
    volume, _ = volume_of(disk_uuids(lab, name)[0])
    assert volume.stat().st_size == 64 * 2**20


def test_unknown_provider_parameter_is_refused_by_name(lab, instance_name):
    name = instance_name()
    proc = add_instance(
        lab,
        name,
        check=False,
        disk_size="64M",
        extra=("--disk", "1:size=32M,provider=archipelago,colour=blue"),
    )
    assert proc.returncode != 0
    assert "colour" in proc.stdout + proc.stderr
    assert name not in {row["name"] for row in lab.instances()}
