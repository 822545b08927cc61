"""losetup command lines and parsers, against output captured from util-linux 2.38."""

from pathlib import Path

import pytest
from unit_helpers import data_text

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage import losetup


@pytest.mark.parametrize(
    "capture, devices",
    [
        ("find-two-loops.txt", ("/dev/loop1", "/dev/loop0")),
        ("find-path-with-space.txt", ("/dev/loop2",)),
        ("find-long-path.txt", ("/dev/loop3",)),
        ("find-none.txt", ()),
    ],
)
def test_parse_associated(capture, devices):
    assert losetup.parse_associated(data_text(f"losetup/{capture}")) == devices


def test_parse_list_json_marks_deleted_files():
    devices = losetup.parse_list_json(data_text("losetup/list-json.txt"))
    by_name = {device.name: device for device in devices}
    assert by_name["/dev/loop2"].back_file == "/tmp/cap/vol b"
    assert by_name["/dev/loop4"].back_file == "/tmp/cap/gone"
    assert by_name["/dev/loop4"].deleted
    assert not by_name["/dev/loop0"].deleted
    assert losetup.backed_by(devices, Path("/tmp/cap/vol-a")) == ("/dev/loop1", "/dev/loop0")
    assert losetup.backed_by(devices, Path("/tmp/cap/gone")) == ("/dev/loop4",)


def test_parse_list_json_with_no_devices():
    assert losetup.parse_list_json("") == ()


def test_parse_attached():
    assert losetup.parse_attached("/dev/loop7\n") == "/dev/loop7"


@pytest.mark.parametrize(
    "parser, text",
    [
        (losetup.parse_attached, ""),
        (losetup.parse_attached, "/dev/sda\n"),
        (losetup.parse_attached, "/dev/loop1\n/dev/loop2\n"),
        (losetup.parse_associated, "no colon here\n"),
        (losetup.parse_associated, "/dev/loop1;rm: x\n"),
        (losetup.parse_list_json, "{not json"),
        (losetup.parse_list_json, '{"devices": []}'),
        (losetup.parse_list_json, data_text("losetup/list-table.txt")),
    ],
)
def test_unexpected_output_is_refused(parser, text):
    with pytest.raises(ValidationError):
        parser(text)


def test_command_lines():
    volume = Path("/srv/archipelago/volumes/v.ext.disk0")
    assert losetup.attach_argv(volume, direct_io=True) == [
        "losetup",
        "--find",
        "--show",
        "--direct-io=on",
        str(volume),
    ]
    assert losetup.attach_argv(volume, direct_io=False, read_only=True) == [
        "losetup",
        "--find",
        "--show",
        "--read-only",
        str(volume),
    ]
    assert losetup.associated_argv(volume) == ["losetup", "--associated", str(volume)]
    assert losetup.detach_argv("/dev/loop3") == ["losetup", "--detach", "/dev/loop3"]
    assert losetup.set_capacity_argv("/dev/loop3") == ["losetup", "--set-capacity", "/dev/loop3"]
    assert losetup.list_argv() == ["losetup", "--list", "--json", "--output", "NAME,BACK-FILE"]
    with pytest.raises(ValidationError):
        losetup.detach_argv("/dev/sda")
