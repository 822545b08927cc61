"""The archipelago provider's verbs on a temporary store, with a fake losetup."""

import json
import os
import shutil

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import extstorage as environ
from ganeti_ext.errors import CommandError, ValidationError
from ganeti_ext.extstorage import store as store_module
from ganeti_ext.extstorage.loopdev import LoopDevices
from ganeti_ext.extstorage.provider import ArchipelagoProvider
from ganeti_ext.extstorage.store import MIB, VolumeStore

VOL = "3f1c2b7e-9d4a-4b8e-a1f0-6c2d9e8b7a51.ext.disk0"


@pytest.fixture
def store(tmp_path):
    (tmp_path / "store").mkdir()
    return VolumeStore(tmp_path / "store")


@pytest.fixture
def provider(store, fake_losetup, tmp_path):
    return ArchipelagoProvider(store, LoopDevices(fake_losetup), tmp_path / "lock")


def verb(provider, name, **changes):
    # verify has no fixture of its own: Ganeti does not call it yet (see the man page).
    env = env_fixture("es-attach" if name == "verify" else f"es-{name}")
    env.update(changes)
    return provider.run(environ.parse(name, env))


def test_create_makes_a_sparse_file_and_metadata(provider, store):
    verb(provider, "create")
    volume = store.volume_path(VOL)
    assert volume.stat().st_size == 1024 * MIB
    assert volume.stat().st_blocks == 0  # sparse: no space used yet
    meta = json.loads(store.meta_path(VOL).read_text())
    assert meta["size_mib"] == 1024 and meta["uuid"] == "0b6f1c1e-5f5e-4a7e-9a4b-2f0b1e2c3d4e"


def test_create_is_idempotent_for_the_same_size(provider, store):
    verb(provider, "create")
    verb(provider, "create")
    with pytest.raises(
        ValidationError, match=r"already exists with 1024 MiB, not the requested 2048"
    ):
        verb(provider, "create", VOL_SIZE="2048")


def test_create_refuses_unknown_params_and_origin_for_now(provider, store):
    with pytest.raises(ValidationError, match=r"^EXTP_SIZE_HINT: unknown parameter"):
        verb(provider, "create", EXTP_SIZE_HINT="3")
    with pytest.raises(ValidationError, match=r"^EXTP_ORIGIN: .*not supported yet"):
        verb(provider, "create", EXTP_ORIGIN="debian-12")
    assert not store.volume_path(VOL).exists()


def test_store_must_exist(tmp_path, fake_losetup):
    missing = ArchipelagoProvider(
        VolumeStore(tmp_path / "not-mounted"), LoopDevices(fake_losetup), tmp_path / "lock"
    )
    with pytest.raises(ValidationError, match=r"not-mounted does not exist .is the shared"):
        verb(missing, "create")
    assert not (tmp_path / "not-mounted").exists()


def test_attach_prints_the_device_and_is_idempotent(provider, store, fake_losetup):
    verb(provider, "create")
    assert verb(provider, "attach") == "/dev/loop0\n"
    assert verb(provider, "attach") == "/dev/loop0\n"
    assert fake_losetup.attached(store.volume_path(VOL)) == ["/dev/loop0"]
    assert fake_losetup.devices["/dev/loop0"]["direct_io"]
    assert not fake_losetup.devices["/dev/loop0"]["read_only"]


def test_attach_reuses_a_loop_set_up_by_someone_else(provider, store, fake_losetup):
    verb(provider, "create")
    fake_losetup.devices["/dev/loop5"] = {
        "path": str(store.volume_path(VOL)),
        "key": (os.stat(store.volume_path(VOL)).st_dev, os.stat(store.volume_path(VOL)).st_ino),
        "read_only": False,
        "direct_io": False,
    }
    assert verb(provider, "attach") == "/dev/loop5\n"


def test_attach_of_a_missing_volume(provider):
    with pytest.raises(ValidationError, match=rf"volume {VOL} does not exist in store"):
        verb(provider, "attach")


def test_attach_refuses_userspace_access(provider):
    verb(provider, "create")
    with pytest.raises(ValidationError, match=r"EXTP_ACCESS=userspace"):
        verb(provider, "attach", EXTP_ACCESS="userspace")


def test_detach_is_idempotent(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    verb(provider, "detach")
    assert fake_losetup.attached(store.volume_path(VOL)) == []
    verb(provider, "detach")
    verb(provider, "detach", VOL_NAME="never-created")


def test_detach_all_loops_of_the_file(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    fake_losetup.run(
        ["losetup", "--find", "--show", str(store.volume_path(VOL))], timeout=1
    )  # a second loop, e.g. from a manual losetup
    verb(provider, "detach")
    assert fake_losetup.devices == {}


def test_detach_tolerates_a_loop_that_vanished_meanwhile(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    real_run = fake_losetup.run

    def racing(argv, **kwargs):
        if argv[1] == "--detach":
            fake_losetup.devices.pop(argv[2])  # someone else detached it first
        return real_run(argv, **kwargs)

    fake_losetup.run = racing
    verb(provider, "detach")


def test_detach_failure_of_a_busy_loop_is_reported(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")

    def busy(argv, **kwargs):
        if argv[1] == "--detach":
            raise CommandError(argv, 1, "losetup: /dev/loop0: detach failed: Device busy")
        return type(fake_losetup).run(fake_losetup, argv, **kwargs)

    fake_losetup.run = busy
    with pytest.raises(CommandError, match=r"Device busy"):
        verb(provider, "detach")


def test_remove_detaches_then_deletes_and_is_idempotent(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    verb(provider, "remove")
    assert not store.volume_path(VOL).exists() and not store.meta_path(VOL).exists()
    assert fake_losetup.devices == {}
    verb(provider, "remove")


def test_detach_finds_loops_of_an_already_deleted_file(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    store.volume_path(VOL).unlink()  # e.g. removed by hand, loop still attached
    verb(provider, "remove")
    assert fake_losetup.devices == {}


def test_grow_extends_the_file_and_refreshes_loops(provider, store, fake_losetup):
    verb(provider, "create")
    verb(provider, "attach")
    verb(provider, "grow")
    assert store.volume_path(VOL).stat().st_size == 2048 * MIB
    assert ["losetup", "--set-capacity", "/dev/loop0"] in fake_losetup.calls
    assert json.loads(store.meta_path(VOL).read_text())["size_mib"] == 2048
    verb(provider, "grow")  # a repeated grow to the same size is fine


def test_grow_refuses_to_shrink(provider, store):
    verb(provider, "create", VOL_SIZE="4096")
    with pytest.raises(ValidationError, match=r"^VOL_NEW_SIZE: .*has 4096 MiB; shrinking"):
        verb(provider, "grow")
    assert store.volume_path(VOL).stat().st_size == 4096 * MIB


def test_setinfo_open_close_record_metadata(provider, store):
    verb(provider, "create")
    verb(provider, "setinfo")
    verb(provider, "open", VOL_OPEN_EXCLUSIVE="False")
    meta = json.loads(store.meta_path(VOL).read_text())
    assert meta["metadata"] == "originstname+snf-42"
    assert meta["open"]["exclusive"] is False
    verb(provider, "close")
    assert json.loads(store.meta_path(VOL).read_text())["open"] is None


def test_setinfo_of_a_missing_volume(provider):
    with pytest.raises(ValidationError, match=r"does not exist"):
        verb(provider, "setinfo")


def test_verify_checks_parameters_only(provider):
    verb(provider, "verify", EXTP_ORIGIN="debian-12")
    with pytest.raises(ValidationError, match=r"^EXTP_COLOUR: unknown parameter 'colour'"):
        verb(provider, "verify", EXTP_COLOUR="blue")


@pytest.fixture
def copying_reflink(monkeypatch):
    """Stand in for FICLONE where the test file system cannot share extents."""

    def copy(source, target):
        with open(target, "xb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out)

    monkeypatch.setattr("ganeti_ext.extstorage.provider.reflink_copy", copy)


def test_snapshot_is_a_read_only_volume_ganeti_can_attach_and_remove(
    provider, store, fake_losetup, copying_reflink
):
    verb(provider, "create", VOL_SIZE="1")
    store.volume_path(VOL).write_bytes(b"data" * 1024)
    verb(provider, "snapshot")
    snap = VOL + ".snap"
    assert store.snapshot_path(snap).read_bytes() == b"data" * 1024
    assert json.loads(store.meta_path(snap).read_text())["snapshot_of"] == VOL
    # gnt-backup export then attaches and removes the snapshot under its own name.
    assert verb(provider, "attach", VOL_NAME=snap) == "/dev/loop0\n"
    assert fake_losetup.devices["/dev/loop0"]["read_only"]
    with pytest.raises(ValidationError, match=r"is a snapshot and cannot grow"):
        verb(provider, "grow", VOL_NAME=snap)
    verb(provider, "remove", VOL_NAME=snap)
    assert not store.snapshot_path(snap).exists() and fake_losetup.devices == {}
    assert store.volume_path(VOL).exists()


def test_snapshot_name_must_be_free(provider, store, copying_reflink):
    verb(provider, "create", VOL_SIZE="1")
    verb(provider, "snapshot")
    with pytest.raises(ValidationError, match=r"^VOL_SNAPSHOT_NAME: .* already exists"):
        verb(provider, "snapshot")
    with pytest.raises(ValidationError, match=r"a snapshot of that name exists"):
        verb(provider, "create", VOL_NAME=VOL + ".snap")


def test_snapshot_without_reflinks_is_a_clear_error_or_a_true_clone(provider, store):
    verb(provider, "create", VOL_SIZE="1")
    store.volume_path(VOL).write_bytes(b"x" * 4096)
    try:
        verb(provider, "snapshot")
    except ValidationError as err:  # ext4, tmpfs: what this test machine has
        assert "does not support reflinks" in str(err)
        assert not store.snapshot_path(VOL + ".snap").exists()
    else:  # XFS or btrfs
        assert store.snapshot_path(VOL + ".snap").read_bytes() == b"x" * 4096


def test_lock_times_out_with_a_clear_error(tmp_path):
    with (
        store_module.node_lock(tmp_path, "vol"),
        pytest.raises(ValidationError, match=r"volume vol is busy"),
        store_module.node_lock(tmp_path, "vol", timeout=0.1),
    ):
        pass
