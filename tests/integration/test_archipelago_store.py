"""The archipelago file store on a real XFS: imports, zero-copy volumes, snapshots, gc, fsck.

No Ganeti here (see test_extstorage.py for the verbs under real Ganeti jobs): the store,
the admin command and the verb scripts, on a scratch XFS made by the session.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import subprocess
import threading

import pytest
import zstandard
from archipelago_helpers import MIB, Server, admin, disk_image, make_store, write_config

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.backend import VolumeSpec
from ganeti_ext.extstorage.filestore import gc, space
from ganeti_ext.extstorage.filestore.digest import digest_snapshot
from ganeti_ext.extstorage.filestore.fsck import DAMAGE, LEFTOVER, Fsck
from ganeti_ext.extstorage.filestore.reflink import extents
from ganeti_ext.extstorage.images.importer import ImportRequest, import_image

SIZE = 64 * MIB


@pytest.fixture
def store(xfs_dir):
    root = xfs_dir / "store"
    root.mkdir()
    return make_store(root)


@pytest.fixture
def image(xfs_dir):
    path = xfs_dir.parent / f"{xfs_dir.name}-image.raw"
    data = disk_image(path, SIZE)
    yield path, data
    path.unlink(missing_ok=True)


def clean(store) -> None:
    findings = Fsck(store).run()
    assert [f for f in findings if f.kind in (DAMAGE, LEFTOVER)] == []
    assert list(store.layout.tmp_dir.iterdir()) == []


def test_a_volume_from_an_image_holds_its_bytes_and_shares_its_extents(store, image):
    path, data = image
    found, new = import_image(store, ImportRequest(str(path), "deb"))
    assert new and found.size == SIZE
    assert sum(1 for block in found.blocks if block) == 3  # 6 MiB + 1 MiB of noise, 4 MiB blocks
    store.create(VolumeSpec("vol", 2 * SIZE, origin="deb"))
    volume = store.volume_data("vol").read_bytes()
    assert volume[:SIZE] == data and volume[SIZE:] == bytes(SIZE)
    with open(store.volume_data("vol"), "rb") as stream:
        mapped = extents(stream.fileno())
    assert mapped and all(extent.shared for extent in mapped)  # nothing copied
    clean(store)


@pytest.mark.parametrize(
    "pack",
    ["xz", "zstd", "gzip", "qcow2", "qcow2-compressed", "qcow2.xz", "http-raw.gz", "http-qcow2"],
)
def test_every_format_imports_to_the_same_blocks(store, image, pack):
    path, data = image
    reference, _ = import_image(store, ImportRequest(str(path), "reference"))
    packed = path.with_name(path.name + "." + pack.replace(".", "-"))
    try:
        if "qcow2" in pack:
            argv = ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(path), str(packed)]
            if pack == "qcow2-compressed":
                argv.insert(2, "-c")
            subprocess.run(argv, check=True)
            if pack == "qcow2.xz":
                packed.write_bytes(lzma.compress(packed.read_bytes()))
        elif pack.endswith("xz"):
            packed.write_bytes(lzma.compress(data))
        elif pack.endswith("zstd"):
            packed.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(data))
        else:
            packed.write_bytes(gzip.compress(data, compresslevel=1))
        source = str(packed)
        server = Server(packed.parent) if pack.startswith("http") else None
        if server:
            source = f"{server.url}/{packed.name}"
        try:
            found, _ = import_image(store, ImportRequest(source, "packed"))
        finally:
            if server:
                server.close()
        assert found.blocks == reference.blocks and found.size == reference.size
        assert found.source["format"].split("+")[0] in ("raw", "qcow2")
        assert store.origin_data("packed").read_bytes() == data
        clean(store)
    finally:
        packed.unlink(missing_ok=True)


def test_a_pipe_imports_as_a_stream_not_as_its_zero_size(store, image):
    path, data = image
    fifo = path.with_name(path.name + ".fifo")
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_bytes, args=(data,), daemon=True)
    writer.start()
    try:
        found, _ = import_image(store, ImportRequest(str(fifo), "piped"))
    finally:
        writer.join(timeout=60)
        fifo.unlink()
    assert found.size == SIZE and store.origin_data("piped").read_bytes() == data
    clean(store)


def test_a_url_with_credentials_is_recorded_without_them(store, image, xfs_dir):
    path, _ = image
    server = Server(path.parent)
    try:
        url = server.url.replace("http://", "http://user:s3cret@") + "/" + path.name
        found, _ = import_image(store, ImportRequest(url, "deb"))
    finally:
        server.close()
    assert found.source["url"] == f"{server.url}/{path.name}"
    assert "s3cret" not in (store.layout.origin_dir("deb") / "map.json").read_text()


def test_a_wrong_checksum_imports_nothing(store, image, xfs_dir):
    path, _ = image
    conf = write_config(xfs_dir, store.layout.root)
    proc = admin(conf, "image", "import", str(path), "--name", "deb", "--sha256", "ab" * 32)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"archipelago: error: image deb: SHA-256 of {path} is ")
    assert "nothing was imported" in proc.stderr and "Traceback" not in proc.stderr
    assert store.map("deb") is None and list(store.layout.blocks_dir.iterdir()) == []
    right = admin(conf, "image", "import", str(path), "--name", "deb", "--sha256",
                  __import__("hashlib").sha256(path.read_bytes()).hexdigest())  # fmt: skip
    assert right.returncode == 0, right.stderr
    again = admin(conf, "image", "import", str(path), "--name", "deb")
    assert again.returncode == 1 and "images are immutable" in again.stderr
    clean(store)


def test_a_truncated_download_imports_nothing(store, image):
    path, _ = image
    server = Server(path.parent)
    try:
        with pytest.raises(ValidationError, match=r"is truncated: got \d+ of 67108864 bytes"):
            import_image(store, ImportRequest(f"{server.url}/short/{path.name}", "deb"))
        with pytest.raises(ValidationError, match=r"HTTP 404"):
            import_image(store, ImportRequest(f"{server.url}/missing.img", "deb"))
    finally:
        server.close()
    assert store.map("deb") is None
    clean(store)


def qcow2(path, *options, size="64M"):
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", *options, str(path), size], check=True
    )
    return path


def test_hostile_qcow2_images_are_refused_before_qemu_img_decodes_them(store, xfs_dir):
    secret = xfs_dir / "host-secret"
    secret.write_bytes(b"host data " * 1000)
    cases = {
        "backing": (qcow2(xfs_dir / "b.qcow2", "-b", str(secret), "-F", "raw"), "backing file"),
        "data-file": (
            qcow2(xfs_dir / "d.qcow2", "-o", f"data_file={secret},data_file_raw=on"),
            "external data file",
        ),
        "too-big": (qcow2(xfs_dir / "big.qcow2", size="2T"), "virtual size of 2199023255552"),
    }
    lying = xfs_dir / "lying.qcow2"
    raw = bytearray(qcow2(xfs_dir / "plain.qcow2").read_bytes())
    raw[24:32] = (1 << 40).to_bytes(8, "big")  # the size field: 1 TiB over a 64 MiB L1 table
    lying.write_bytes(bytes(raw))
    cases["lying"] = (lying, "header is inconsistent")
    for name, (path, message) in cases.items():
        with pytest.raises(ValidationError, match=message):
            import_image(store, ImportRequest(str(path), name, max_size=1 << 40))
    assert store.origin_names() == []
    clean(store)


def test_bombs_and_impostors_are_refused(store, xfs_dir):
    bomb = xfs_dir / "bomb.xz"
    bomb.write_bytes(lzma.compress(bytes(300 * MIB)))
    with pytest.raises(ValidationError, match=r"decodes to more than 209715200 bytes"):
        import_image(store, ImportRequest(str(bomb), "bomb", max_size=200 * MIB))
    vmdk = xfs_dir / "disk.img"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "16M"], check=True)
    with pytest.raises(ValidationError, match="the data is VMDK"):
        import_image(store, ImportRequest(str(vmdk), "vmdk"))
    empty = xfs_dir / "empty.img"
    empty.write_bytes(b"")
    with pytest.raises(ValidationError, match="is empty"):
        import_image(store, ImportRequest(str(empty), "empty"))
    padded = qcow2(xfs_dir / "padded.qcow2", size="16M")  # + 100 MiB its header never names
    padded.write_bytes(lzma.compress(padded.read_bytes() + bytes(100 * MIB)))
    with pytest.raises(ValidationError, match="the qcow2 container is over"):
        import_image(store, ImportRequest(str(padded), "padded"))
    assert store.origin_names() == []
    clean(store)


def test_a_full_file_system_gives_the_space_back(xfs_mount, tmp_path):
    from labkit import xfs

    small = xfs.scratch("small", "320M")
    try:
        store = make_store(small)
        free_before = os.statvfs(small).f_bavail
        big = tmp_path / "big.raw"
        big.write_bytes(os.urandom(400 * MIB))
        with pytest.raises(ValidationError, match=r"image big: the store's file system is full"):
            import_image(store, ImportRequest(str(big), "big"))
        assert store.map("big") is None
        # XFS frees deleted inodes in the background; a sync waits for it.
        os.sync()
        assert os.statvfs(small).f_bavail >= free_before - 64  # a few blocks of metadata
        clean(store)
        big.write_bytes(os.urandom(100 * MIB))
        found, _ = import_image(store, ImportRequest(str(big), "big"))
        assert found.size == 100 * MIB
        clean(store)
    finally:
        xfs.drop_scratch(small)


def test_snapshot_freezes_then_digests_sharing_unchanged_blocks(store, image):
    path, data = image
    base, _ = import_image(store, ImportRequest(str(path), "deb"))
    store.create(VolumeSpec("vol", SIZE, origin="deb"))
    with open(store.volume_data("vol"), "r+b") as stream:
        stream.seek(30 * MIB)
        stream.write(b"written by the guest" * 1000)
    store.snapshot("vol", "vol.snap")
    frozen = store.map("vol.snap")
    assert frozen.kind == "snapshot" and not frozen.digested
    with open(store.volume_data("vol"), "r+b") as stream:  # later writes are not in it
        stream.seek(40 * MIB)
        stream.write(b"after the snapshot")
    store.create(VolumeSpec("clone", SIZE, origin="vol.snap"))  # usable before the digest
    assert digest_snapshot(store, "vol.snap")
    digested = store.map("vol.snap")
    changed = [
        i for i, (a, b) in enumerate(zip(base.blocks, digested.blocks, strict=True)) if a != b
    ]
    assert changed == [7]  # 30 MiB is in block 7: every other block is the image's own
    expected = bytearray(data)
    expected[30 * MIB : 30 * MIB + 20000] = b"written by the guest" * 1000
    assert store.origin_data("vol.snap").read_bytes() == expected
    assert store.volume_data("clone").read_bytes() == expected
    assert not digest_snapshot(store, "vol.snap")  # once is enough
    clean(store)


def test_gc_frees_what_only_removed_images_used_and_volumes_keep_their_bytes(store, image, xfs_dir):
    path, _ = image
    import_image(store, ImportRequest(str(path), "deb"))
    other = xfs_dir / "other.raw"
    disk_image(other, SIZE, seed=2)
    import_image(store, ImportRequest(str(other), "other"))
    store.create(VolumeSpec("vol", SIZE, origin="other"))
    dry = gc.collect(store, dry_run=True)
    assert (dry.blocks_removed, dry.blocks_kept) == (0, 6)
    store.remove("other", kinds=("image",))
    report = gc.collect(store)
    assert (report.blocks_removed, report.blocks_kept) == (3, 3)
    assert store.volume_data("vol").read_bytes() == other.read_bytes()
    assert store.map("deb").referenced() <= {p.name for p in store.layout.blocks_dir.glob("*/*")}
    clean(store)


def test_twenty_clones_with_a_mebibyte_each_take_little_space(store, image):
    path, _ = image
    import_image(store, ImportRequest(str(path), "deb"))
    before = space.report(store).used
    for index in range(20):
        store.create(VolumeSpec(f"v{index}", SIZE, origin="deb"))
        with open(store.volume_data(f"v{index}"), "r+b") as stream:
            stream.seek(index * MIB)
            stream.write(os.urandom(MIB))
            os.fsync(stream.fileno())
    after = space.report(store)
    grown = after.used - before
    assert 20 * MIB <= grown <= 30 * MIB  # the writes; nothing of the image was copied
    assert after.apparent > 20 * 7 * MIB  # what du would have said


def test_fsck_finds_and_repairs_damage_and_leftovers(store, image, xfs_dir):
    path, _ = image
    found, _ = import_image(store, ImportRequest(str(path), "deb"))
    first, second = [b for b in found.blocks if b][:2]
    corrupt = store.layout.block(first)
    os.chmod(corrupt, 0o644)
    with open(corrupt, "r+b") as stream:
        stream.write(b"bit rot")
    store.layout.block(second).unlink()
    (store.layout.tmp_dir / "import-gone-1-abcd").mkdir()  # no lock: an interrupted one
    os.utime(store.layout.tmp_dir / "import-gone-1-abcd", (0, 0))
    (store.layout.blocks_dir / "zz").mkdir()
    conf = write_config(xfs_dir, store.layout.root)
    proc = admin(conf, "fsck")
    assert proc.returncode == 1
    assert f"damage: block {first} (its bytes do not hash to its name), used by deb" in proc.stdout
    assert f"damage: block {second} (missing), used by deb" in proc.stdout
    assert "leftover: " in proc.stdout and "2 damage finding(s) left" in proc.stdout
    repaired = admin(conf, "fsck", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert "rebuilt from an origin's data file" in repaired.stdout
    assert json.loads(admin(conf, "fsck", "--json").stdout) == []
    clean(store)


def test_a_store_on_ext4_is_refused_naming_it(tmp_path):
    conf = write_config(tmp_path, tmp_path)
    proc = admin(conf, "store", "init")
    assert proc.returncode == 1
    assert "is on ext4" in proc.stderr and "reflink=1" in proc.stderr
    (tmp_path / "archipelago-store.json").write_text(
        json.dumps(
            {
                "format": "archipelago-store",
                "version": 1,
                "block_size": 4 * MIB,
                "created": "x",
                "store_id": "y",
            }
        )
    )
    listing = admin(conf, "image", "list")
    assert listing.returncode == 1 and "is on ext4" in listing.stderr


def test_admin_listings_and_df(store, image, xfs_dir):
    path, _ = image
    conf = write_config(xfs_dir, store.layout.root)
    imported = admin(conf, "image", "import", str(path), "--name", "deb")
    assert (
        imported.returncode == 0
        and "image deb imported: 64.0 MiB, 3 data blocks" in imported.stdout
    )
    images = json.loads(admin(conf, "image", "list", "--json").stdout)
    assert [(i["name"], i["size"], i["data_blocks"]) for i in images] == [("deb", SIZE, 3)]
    store.create(VolumeSpec("vol", SIZE, origin="deb"))
    taken = admin(conf, "snapshot", "create", "vol", "s1", "--wait")
    assert taken.returncode == 0 and "taken and digested" in taken.stdout
    assert json.loads(admin(conf, "snapshot", "list", "--json").stdout)[0]["data_blocks"] == 3
    df = json.loads(admin(conf, "df", "--json").stdout)
    assert df["groups"]["volumes"]["files"] == 1 and df["used"] < df["apparent"]
    assert "sharing saves" in admin(conf, "df").stdout
    assert admin(conf, "image", "remove", "deb").returncode == 0
    assert admin(conf, "image", "remove", "deb").stderr == (
        "archipelago: error: no image named deb in the store\n"
    )
    assert admin(conf, "gc").returncode == 0
