"""archipelago under faults: kill -9 mid-operation, gc racing imports and snapshots,
two nodes creating one volume, and the verbs with real loop devices.

After any interruption `fsck` must find no damage, and the same operation run again
must succeed and leave the store clean (debris of the interrupted run included).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time

import pytest
from archipelago_helpers import (
    MIB,
    admin,
    admin_process,
    disk_image,
    make_store,
    node_root,
    verb_process,
    write_config,
)
from unit_helpers_env import es_env

from ganeti_ext.extstorage.backend import VolumeSpec
from ganeti_ext.extstorage.filestore import gc, work
from ganeti_ext.extstorage.filestore.digest import digest_snapshot
from ganeti_ext.extstorage.filestore.fsck import DAMAGE, LEFTOVER, Fsck
from ganeti_ext.extstorage.images.importer import ImportRequest, import_image

SIZE = 512 * MIB


@pytest.fixture
def store(xfs_dir):
    root = xfs_dir / "store"
    root.mkdir()
    return make_store(root)


@pytest.fixture
def big_image(xfs_mount):
    """A 512 MiB image with 160 MiB of data: long enough to be killed in the middle."""
    path = xfs_mount / "faults-image.raw"
    if not path.exists():
        disk_image(path, SIZE, data=160 * MIB)
    return path


def no_damage(store) -> list:
    findings = Fsck(store, hash_blocks=True).run()
    assert [f.what for f in findings if f.kind == DAMAGE] == []
    return findings


def fully_clean(store) -> None:
    # A background digest whose snapshot is already committed may still be removing its
    # work directory: wait for live operations to end (a dead one's stays, and fails).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        not work.is_abandoned(entry) for entry in store.layout.tmp_dir.iterdir()
    ):
        time.sleep(0.05)
    findings = no_damage(store)
    assert [f.what for f in findings if f.kind == LEFTOVER] == []
    assert list(store.layout.tmp_dir.iterdir()) == []


def kill_at_random(process: subprocess.Popen, longest: float, rng: random.Random) -> bool:
    """SIGKILL after a random delay; False when it had finished by then."""
    deadline = time.monotonic() + rng.uniform(0, longest)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def test_kill_9_during_import_then_retry(store, big_image, xfs_dir):
    conf = write_config(xfs_dir, store.layout.root)
    rng = random.Random(9)
    started = time.monotonic()
    assert (
        admin(conf, "image", "import", str(big_image), "--name", "probe", "--quiet").returncode == 0
    )
    longest = time.monotonic() - started
    assert admin(conf, "image", "remove", "probe").returncode == 0
    assert admin(conf, "gc").returncode == 0
    killed = 0
    for attempt in range(6):
        process = admin_process(
            conf, "image", "import", str(big_image), "--name", f"i{attempt}", "--quiet"
        )
        killed += kill_at_random(process, longest, rng)
        no_damage(store)
        assert store.map(f"i{attempt}") is None or store.map(f"i{attempt}").size == SIZE
    assert killed >= 3
    retried = admin(conf, "image", "import", str(big_image), "--name", "final", "--quiet")
    assert retried.returncode == 0, retried.stderr
    assert store.origin_data("final").read_bytes() == big_image.read_bytes()
    fully_clean(store)


def test_kill_9_during_snapshot_digest_and_gc_then_retry(store, big_image, xfs_dir):
    conf = write_config(xfs_dir, store.layout.root)
    import_image(store, ImportRequest(str(big_image), "deb"))
    rng = random.Random(5)
    for round_ in range(4):
        volume = f"vol{round_}"
        store.create(VolumeSpec(volume, SIZE, origin="deb"))
        with open(store.volume_data(volume), "r+b") as stream:
            stream.write(os.urandom(64 * MIB))
        taking = admin_process(conf, "snapshot", "create", "--wait", volume, f"snap{round_}")
        kill_at_random(taking, 1.0, rng)
        no_damage(store)
        if store.map(f"snap{round_}") is None:  # killed before the freeze: take it again
            store.snapshot(volume, f"snap{round_}")
        store.remove(volume)
        store.remove("deb" if round_ == 3 else "nothing", kinds=("image",))
        collect = admin_process(conf, "gc")
        kill_at_random(collect, 0.5, rng)
        no_damage(store)
    assert admin(conf, "gc").returncode == 0
    for round_ in range(4):
        assert store.map(f"snap{round_}").digested
        store.create(VolumeSpec(f"again{round_}", SIZE, origin=f"snap{round_}"))
    fully_clean(store)


def test_kill_9_during_create_and_grow_then_retry(store, big_image, xfs_dir):
    import_image(store, ImportRequest(str(big_image), "deb"))
    root = node_root(xfs_dir, store.layout.root)
    rng = random.Random(3)
    for attempt in range(8):
        name = f"v{attempt}.ext.disk0"
        env = es_env("create", VOL_NAME=name, VOL_SIZE="1024", EXTP_ORIGIN="deb")
        kill_at_random(verb_process(root, "create", env), 0.3, rng)
        no_damage(store)
        retried = verb_process(root, "create", env)
        _, err = retried.communicate(timeout=60)
        assert retried.returncode == 0, err
        grow = es_env("grow", VOL_NAME=name, VOL_SIZE="1024", VOL_NEW_SIZE="2048")
        kill_at_random(verb_process(root, "grow", grow), 0.2, rng)
        again = verb_process(root, "grow", grow)
        assert again.wait(timeout=60) == 0, again.stderr.read()
        assert store.volume(name).size == 2048 * MIB
        assert store.volume_data(name).read_bytes()[:SIZE] == big_image.read_bytes()
    fully_clean(store)


def test_gc_racing_imports_and_snapshots_never_loses_a_referenced_block(store, xfs_dir):
    images = []
    for seed in range(4):
        path = xfs_dir / f"race{seed}.raw"
        disk_image(path, 64 * MIB, seed=seed % 2, data=24 * MIB)  # pairs share every block
        images.append(path)
    stop = threading.Event()
    errors: list[BaseException] = []

    def collector():
        try:
            while not stop.is_set():
                gc.collect(store, digest=False)
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=collector)
    thread.start()
    try:
        for round_ in range(6):
            for index, path in enumerate(images):
                name = f"r{round_}-{index}"
                import_image(store, ImportRequest(str(path), name))
                store.create(VolumeSpec(f"v-{name}", 64 * MIB, origin=name))
                store.snapshot(f"v-{name}", f"s-{name}")
                digest_snapshot(store, f"s-{name}")
                store.remove(f"v-{name}")
                if index % 2:
                    store.remove(f"r{round_}-{index - 1}", kinds=("image",))
    finally:
        stop.set()
        thread.join()
    assert errors == []
    for name in store.origin_names():
        missing = [b for b in store.map(name).referenced() if not store.layout.block(b).exists()]
        assert missing == [], f"{name} lost blocks to gc"
    fully_clean(store)


def test_two_nodes_creating_one_volume_at_once(store, xfs_dir):
    disk_image(xfs_dir / "img.raw", 64 * MIB)
    import_image(store, ImportRequest(str(xfs_dir / "img.raw"), "deb"))
    root = node_root(xfs_dir, store.layout.root)
    for attempt in range(5):
        name = f"same{attempt}.ext.disk0"
        same = es_env("create", VOL_NAME=name, VOL_SIZE="128", EXTP_ORIGIN="deb")
        other = es_env("create", VOL_NAME=name, VOL_SIZE="256", EXTP_ORIGIN="deb")
        racers = [verb_process(root, "create", env) for env in (same, same, other)]
        results = [(p.wait(timeout=60), p.stderr.read()) for p in racers]
        assert (results[0][0] == 0 and results[1][0] == 0) or results[2][0] == 0
        for code, err in results:
            if code:
                assert "already exists with" in err and "Traceback" not in err
        assert store.volume_names().count(name) == 1
    fully_clean(store)


def test_the_verbs_with_real_loop_devices(store, xfs_dir):
    disk_image(xfs_dir / "img.raw", 64 * MIB)
    import_image(store, ImportRequest(str(xfs_dir / "img.raw"), "deb"))
    root = node_root(xfs_dir, store.layout.root)
    name = "loops.ext.disk0"

    def run(verb, **env):
        process = verb_process(root, verb, es_env(verb, VOL_NAME=name, **env))
        out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        return out

    run("create", VOL_SIZE="128", EXTP_ORIGIN="deb")
    device, uri = run("attach").split()
    assert run("attach").split() == [device, uri]  # idempotent
    assert uri == f"kvm:{store.volume_data(name)}"
    with open(device, "rb") as disk:
        assert disk.read(64 * MIB) == (xfs_dir / "img.raw").read_bytes()
    run("grow", VOL_SIZE="128", VOL_NEW_SIZE="192")
    size = subprocess.run(["blockdev", "--getsize64", device], capture_output=True, text=True)
    assert int(size.stdout) == 192 * MIB
    run("snapshot", VOL_SNAPSHOT_NAME=f"{name}.snap")
    snap_device = verb_process(root, "attach", es_env("attach", VOL_NAME=f"{name}.snap"))
    snap = snap_device.communicate(timeout=60)[0].split()[0]
    ro = subprocess.run(["blockdev", "--getro", snap], capture_output=True, text=True)
    assert ro.stdout.strip() == "1"
    for verb in ("detach", "remove"):
        process = verb_process(root, verb, es_env(verb, VOL_NAME=f"{name}.snap"))
        assert process.wait(timeout=60) == 0
    run("detach")
    run("detach")
    run("remove")
    assert store.volume(name) is None
    listing = subprocess.run(
        ["losetup", "-j", str(store.volume_data(name))], capture_output=True, text=True
    )
    assert listing.stdout == ""
    fully_clean(store)


def test_expected_failures_are_one_line(store, xfs_dir):
    root = node_root(xfs_dir, store.layout.root)
    cases = [
        (
            "create",
            {"VOL_NAME": "x.ext.disk0", "VOL_SIZE": "99999999999999"},
            "more than the store's file system allows",
        ),
        (
            "create",
            {"VOL_NAME": "x.ext.disk0", "VOL_SIZE": "64", "EXTP_ORIGIN": "nope"},
            "no image or snapshot named nope",
        ),
        ("attach", {"VOL_NAME": "ghost.ext.disk0"}, "volume ghost.ext.disk0 does not exist"),
        ("grow", {"VOL_NAME": "ghost.ext.disk0", "VOL_NEW_SIZE": "64"}, "does not exist"),
    ]
    for verb, env, message in cases:
        process = verb_process(root, verb, env)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 1, (verb, err)
        assert message in err and err.count("\n") == 1 and "Traceback" not in err
    fully_clean(store)
