"""The provider against the real losetup (root only): checks the command lines and the
output formats the parsers were written for, on a sparse file under a temporary store."""

import os
import subprocess

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import extstorage as environ
from ganeti_ext.extstorage import losetup
from ganeti_ext.extstorage.loopdev import LoopDevices
from ganeti_ext.extstorage.provider import ArchipelagoProvider
from ganeti_ext.extstorage.store import MIB, VolumeStore

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="needs root and loop devices",
)


@pytest.fixture
def provider(tmp_path):
    (tmp_path / "store").mkdir()
    store = VolumeStore(tmp_path / "store")
    yield ArchipelagoProvider(store, LoopDevices(), tmp_path / "lock")
    # Never leave a loop device behind, even when a test failed half-way.
    listing = subprocess.run(losetup.list_argv(), capture_output=True, text=True).stdout
    for device in losetup.parse_list_json(listing):
        if device.back_file and device.back_file.startswith(f"{tmp_path}/"):
            subprocess.run(losetup.detach_argv(device.name), check=False)


def test_attach_grow_detach_remove_with_real_loop_devices(provider):
    def verb(name, **changes):
        return provider.run(environ.parse(name, env_fixture(f"es-{name}") | changes))

    verb("create", VOL_SIZE="8")
    device = verb("attach").strip()
    assert device.startswith("/dev/loop")
    assert verb("attach").strip() == device
    with open(f"/sys/block/{os.path.basename(device)}/loop/dio") as dio:
        assert dio.read().strip() == "1"
    verb("grow", VOL_SIZE="8", VOL_NEW_SIZE="16")
    with open(f"/sys/block/{os.path.basename(device)}/size") as sectors:
        assert int(sectors.read()) * 512 == 16 * MIB
    verb("detach")
    verb("detach")
    assert not os.path.exists(f"/sys/block/{os.path.basename(device)}/loop")
    verb("attach")
    verb("remove")
    verb("remove")


def test_remove_finds_the_loop_of_a_file_deleted_behind_its_back(provider):
    env = env_fixture("es-create") | {"VOL_SIZE": "4"}
    provider.run(environ.parse("create", env))
    device = provider.run(environ.parse("attach", env_fixture("es-attach"))).strip()
    provider.store.volume_path(env["VOL_NAME"]).unlink()
    provider.run(environ.parse("remove", env_fixture("es-remove")))
    assert not os.path.exists(f"/sys/block/{os.path.basename(device)}/loop")
