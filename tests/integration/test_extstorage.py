"""The archipelago ExtStorage provider under real Ganeti jobs, on the lab's shared XFS store."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from archipelago_helpers import MIB, disk_image
from instances import add_instance, archipelago, disk_uuids, loops_of, volume_of

from labkit import ganeti_release, settings


@pytest.fixture(scope="module")
def image(lab, tmp_path_factory):
    """An image of 48 MiB with noise at both ends, imported for this module's tests."""
    path = tmp_path_factory.mktemp("images") / "t.raw"
    data = disk_image(path, 48 * MIB, seed=7, data=5 * MIB)
    name = f"t-{uuid.uuid4().hex[:8]}"
    archipelago("image", "import", str(path), "--name", name, "--quiet")
    yield name, data
    archipelago("image", "remove", name, check=False)


def store_is_clean() -> None:
    proc = archipelago("fsck", "--no-hash", "--json", check=False)
    damage = [f for f in json.loads(proc.stdout) if f["kind"] in ("damage", "leftover")]
    assert proc.returncode == 0 and damage == []


def test_an_instance_from_an_image_grows_and_goes(lab, instance_name, image):
    origin, data = image
    name = instance_name()
    add_instance(lab, name, disk_size="64M", origin=origin)
    volume, record = volume_of(disk_uuids(lab, name)[0])
    assert record["origin"] == origin and record["metadata"] == f"originstname+{name}"
    assert record["opens"][settings.MASTER.name]["exclusive"] is True
    assert volume.stat().st_size == 64 * MIB
    assert volume.read_bytes()[: len(data)] == data
    assert len(loops_of(volume)) == 1, "attached exactly once while running"

    lab.gnt("gnt-instance", "grow-disk", "--absolute", name, "0", "96M")
    assert volume.stat().st_size == 96 * MIB
    size = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "disk.sizes", name).stdout
    assert size.strip() == "96"

    lab.gnt("gnt-instance", "shutdown", "--timeout=0", name)
    lab.gnt("gnt-instance", "activate-disks", name)
    lab.gnt("gnt-instance", "deactivate-disks", name)
    assert loops_of(volume) == [], "deactivate-disks detaches the loop device"

    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert not volume.exists() and loops_of(volume) == []
    store_is_clean()


def test_bad_origins_fail_the_job_by_name_and_leave_nothing(lab, instance_name, image):
    origin, _ = image
    before = archipelago("volume", "list", "--json").stdout
    for disk_size, wanted, message in (
        ("32M", origin, f"origin {origin} holds 48 MiB, more than the 32 MiB"),
        ("64M", "no-such-image", "no image or snapshot named no-such-image"),
        ("64M", "../../etc", "origin name '../../etc'"),
    ):
        name = instance_name()
        proc = add_instance(lab, name, disk_size=disk_size, origin=wanted, check=False)
        assert proc.returncode != 0
        assert message in proc.stdout + proc.stderr
        assert name not in {row["name"] for row in lab.instances()}
    assert archipelago("volume", "list", "--json").stdout == before
    store_is_clean()


def test_grow_refuses_to_shrink(lab, instance_name):
    name = instance_name()
    add_instance(lab, name, disk_size="64M")
    proc = lab.gnt("gnt-instance", "grow-disk", "--absolute", name, "0", "32M", check=False)
    assert proc.returncode != 0
    volume, _ = volume_of(disk_uuids(lab, name)[0])
    assert volume.stat().st_size == 64 * MIB


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


def test_migration_moves_the_exclusive_open(lab2, instance_name, image):
    origin, _ = image
    name = instance_name()
    add_instance(lab2, name, origin=origin)
    _, record = volume_of(disk_uuids(lab2, name)[0])
    assert set(record["opens"]) == {settings.NODES[1].name}
    lab2.gnt("gnt-instance", "migrate", "-f", name)
    _, record = volume_of(disk_uuids(lab2, name)[0])
    assert record["opens"] == {
        settings.NODES[2].name: {
            "exclusive": True,
            "since": record["opens"][settings.NODES[2].name]["since"],
        }
    }
    lab2.gnt("gnt-instance", "failover", "-f", "--shutdown-timeout=0", name)
    _, record = volume_of(disk_uuids(lab2, name)[0])
    assert list(record["opens"]) == [settings.NODES[1].name]


@pytest.mark.skipif(
    not ganeti_release.backup_export_works(ganeti_release.installed_package_version()),
    reason="this Ganeti's gnt-backup export fails whatever the storage (ganeti/ganeti#1839)",
)
def test_backup_export_snapshots_and_import_restores(lab, instance_name, image):
    origin, data = image
    name, restored = instance_name(), instance_name()
    add_instance(lab, name, origin=origin)
    node = settings.MASTER.name
    before = archipelago("snapshot", "list", "--json").stdout
    lab.gnt("gnt-backup", "export", "-n", node, "--noshutdown", name, timeout=900)
    assert archipelago("snapshot", "list", "--json").stdout == before, "its snapshot removed"
    lab.gnt(
        "gnt-backup", "import", "-n", node, "--src-node", node, "--src-dir",
        f"/var/lib/ganeti/export/{name}", "-t", "ext", "--disk", "0:size=64M,provider=archipelago",
        "--no-name-check", "--no-ip-check", "--net", f"0:network={settings.NETWORK.name},ip=pool",
        "-H", "fake", "-B", f"memory={settings.GUEST_MEMORY_MB}", restored, timeout=900,
    )  # fmt: skip
    volume, record = volume_of(disk_uuids(lab, restored)[0])
    assert record["origin"] is None
    assert volume.read_bytes()[: len(data)] == data
    lab.gnt("gnt-backup", "remove", name, check=False)
    store_is_clean()


def test_userspace_access_hands_qemu_the_file_itself(lab, instance_name, image):
    origin, data = image
    name = instance_name()
    if not ganeti_release.userspace_file_access_works(ganeti_release.installed_version()):
        # Ganeti 3.1 could never start it: the provider refuses it before anything is made.
        before = archipelago("volume", "list", "--json").stdout
        proc = add_instance(
            lab, name, hypervisor="kvm", origin=origin, disk_params="access=userspace", check=False
        )
        assert proc.returncode != 0
        assert "EXTP_ACCESS=userspace needs Ganeti 3.0" in proc.stdout + proc.stderr
        assert name not in {row["name"] for row in lab.instances()}
        assert archipelago("volume", "list", "--json").stdout == before
        return
    add_instance(lab, name, hypervisor="kvm", origin=origin, disk_params="access=userspace")
    volume, _ = volume_of(disk_uuids(lab, name)[0])
    cmdline = lab.run(["cat", f"/proc/{qemu_pid(lab, name)}/cmdline"]).stdout.replace("\0", " ")
    assert f"file={volume}," in cmdline, "qemu opens the data file, not the loop device"
    expected = hashlib.md5(data[: 4 * MIB]).hexdigest()
    lab.wait_console(name, "head -c 4194304 /dev/vda | md5sum", expected)


def qemu_pid(lab, name: str) -> int:
    pidfile = f"/run/ganeti/kvm-hypervisor/pid/{name}"
    return int(lab.run(["cat", pidfile]).stdout.strip())
