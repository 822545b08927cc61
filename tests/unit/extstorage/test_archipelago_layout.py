"""The store's format file, names, maps, volume records and mount table parsing (pure)."""

import json

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.backend import Volume
from ganeti_ext.extstorage.filestore import layout, maps, records

DIGEST = "ab" * 32


@pytest.mark.parametrize(
    "name",
    ["debian-12", "3f1c2b7e-9d4a-4b8e-a1f0-6c2d9e8b7a51.ext.disk0", "a.snap", "x_1+2:3"],
)
def test_good_names(name):
    assert layout.check_name("image", name) == name


@pytest.mark.parametrize(
    "name",
    ["", "a/b", "..", "a..b", ".hidden", "-flag", "tab\there", "nl\n", "nul\0", "é", "x" * 201],
)
def test_bad_names_are_refused_by_kind(name):
    with pytest.raises(ValidationError, match=r"^image name .*: must be 1-200"):
        layout.check_name("image", name)


def test_the_store_locks_name_is_reserved():
    with pytest.raises(ValidationError, match=r"^volume name 'store': reserved"):
        layout.check_name("volume", "store")


def test_block_path_fans_out_by_the_first_two_digits(tmp_path):
    assert layout.Layout(tmp_path).block(DIGEST) == tmp_path / "blocks" / "ab" / DIGEST


def test_format_file_round_trip_and_checks(tmp_path):
    fmt = layout.init_store(layout.Layout(tmp_path), 4 << 20)
    text = (tmp_path / layout.FORMAT_FILE).read_text()
    assert layout.parse_format(text, "f") == fmt
    assert json.loads(text)["format"] == "archipelago-store"
    assert layout.init_store(layout.Layout(tmp_path), 4 << 20) == fmt  # idempotent
    with pytest.raises(ValidationError, match="block size of a store cannot change"):
        layout.init_store(layout.Layout(tmp_path), 1 << 20)
    future = text.replace('"version": 1', '"version": 2')
    with pytest.raises(ValidationError, match="format version 2; this archipelago reads"):
        layout.parse_format(future, "f")
    with pytest.raises(ValidationError, match="block_size 3 is not a valid"):
        layout.parse_format(text.replace('"block_size": 4194304', '"block_size": 3'), "f")


def test_a_missing_store_and_an_uninitialized_one_are_told_apart(tmp_path):
    with pytest.raises(ValidationError, match=r"does not exist .is the shared storage mounted"):
        layout.read_format(layout.Layout(tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="archipelago store init"):
        layout.read_format(layout.Layout(tmp_path))


MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
90 22 7:0 / /srv/archipelago rw,relatime shared:40 - xfs /dev/loop0 rw,attr2
91 22 7:1 / /mnt/with\\040space rw - btrfs /dev/loop1 rw
"""


@pytest.mark.parametrize(
    ("path", "fs"),
    [
        ("/srv/archipelago", "xfs"),
        ("/srv/archipelago/volumes/x", "xfs"),
        ("/srv/archipelagoX", "ext4"),
        ("/mnt/with space/store", "btrfs"),
        ("/var/tmp", "ext4"),
    ],
)
def test_mount_of_a_path(path, fs):
    mount = layout.mount_of(path, layout.parse_mountinfo(MOUNTINFO))
    assert mount is not None and mount.fs_type == fs


def test_a_store_on_ext4_is_refused_naming_the_file_system(tmp_path):
    text = MOUNTINFO.replace("/srv/archipelago", str(tmp_path))
    assert layout.check_file_system(tmp_path, text).fs_type == "xfs"
    with pytest.raises(ValidationError, match=r"is on ext4 \(/dev/vda at /\), which cannot"):
        layout.check_file_system(tmp_path / "x" / ".." / "..", MOUNTINFO)


def image_map(**changes):
    data = {
        "format": 1,
        "kind": "image",
        "name": "deb",
        "size": 10 << 20,
        "block_size": 4 << 20,
        "blocks": [DIGEST, None, DIGEST],
        "created": "2026-01-01T00:00:00Z",
        "source": {"file": "/x"},
    }
    data.update(changes)
    return json.dumps(data)


def test_a_map_round_trips():
    parsed = maps.parse(image_map(), "m")
    assert parsed.blocks == (DIGEST, None, DIGEST) and parsed.referenced() == {DIGEST}
    assert maps.parse(json.dumps(parsed.to_json()), "m") == parsed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"blocks": [DIGEST]}, "1 blocks listed, 3 expected"),
        ({"blocks": [DIGEST, "../../etc/passwd", None]}, "block 1 is not a SHA-256"),
        ({"blocks": None}, "an image's map must list its blocks"),
        ({"kind": "volume"}, "kind 'volume' is not one of"),
        ({"name": "../x"}, "name '../x'"),
        ({"size": -1}, "size must be a non-negative integer"),
        ({"format": 2}, "map format 2 is not 1"),
    ],
)
def test_bad_maps_are_named(changes, message):
    with pytest.raises(ValidationError, match=message):
        maps.parse(image_map(**changes), "m")


def test_a_pending_snapshot_has_no_blocks_yet():
    parsed = maps.parse(image_map(kind="snapshot", blocks=None), "m")
    assert not parsed.digested and parsed.referenced() == set()


def test_volume_record_round_trip_keeps_open_times():
    volume = Volume("v", 1 << 20, "deb", "u", None, "m", {"node1": True}, "2026-01-01T00:00:00Z")
    text = json.dumps(records.to_json(volume, {"node1": "2026-02-02T00:00:00Z"}))
    assert records.parse(text, 1 << 20, "r") == volume
    assert records.open_times(text) == {"node1": "2026-02-02T00:00:00Z"}
    with pytest.raises(ValidationError, match="opens must map node names"):
        records.parse(text.replace("true", '"yes"'), 0, "r")
