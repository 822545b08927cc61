"""Image format detection and the qcow2 header checks, on headers built here."""

import struct

import pytest

from ganeti_ext.errors import ValidationError
from ganeti_ext.extstorage.images import formats, qemuimg

GIB = 1024**3


def qcow2_header(
    *,
    version=3,
    backing=0,
    cluster_bits=16,
    size=GIB,
    crypt=0,
    l1_size=None,
    incompatible=0,
):
    if l1_size is None:
        per_l1 = (1 << cluster_bits) // 8 * (1 << cluster_bits)
        l1_size = -(-size // per_l1)
    head = struct.pack(
        ">4sIQIIQIIQQIIQ",
        b"QFI\xfb",
        version,
        backing,
        0,
        cluster_bits,
        size,
        crypt,
        l1_size,
        0x30000,
        0x10000,
        1,
        0,
        0,
    )
    if version == 3:
        head += struct.pack(">QQQII", incompatible, 0, 0, 4, 104)
    return head.ljust(512, b"\0")


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xfd7zXZ\x00rest", "xz"),
        (b"\x28\xb5\x2f\xfdrest", "zstd"),
        (b"\x1f\x8b\x08", "gzip"),
        (b"QFI\xfb\x00\x00\x00\x03", "qcow2"),
        (bytes(512), "raw"),
        (b"\xebc\x90" + bytes(509), "raw"),  # an MBR boot sector
    ],
    ids=["xz", "zstd", "gzip", "qcow2", "zeros", "mbr"],
)
def test_detect_by_content(head, expected):
    assert formats.detect(head) == expected


@pytest.mark.parametrize("magic", [b"KDMV", b"conectix", b"vhdxfile", b"BZh9"])
def test_foreign_formats_are_named_not_imported_as_raw(magic):
    with pytest.raises(ValidationError, match=r"the data is \w+, not a raw disk or qcow2"):
        formats.detect(magic + bytes(100))


def test_a_plain_qcow2_header_passes():
    header = formats.parse_qcow2_header(qcow2_header(), limit=2 * GIB)
    assert (header.version, header.size, header.cluster_size) == (3, GIB, 65536)
    assert formats.parse_qcow2_header(qcow2_header(version=2), limit=2 * GIB).version == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backing": 512}, "has a backing file: refused"),
        ({"incompatible": formats.QCOW2_INCOMPAT_DATA_FILE}, "external data file: refused"),
        ({"incompatible": formats.QCOW2_INCOMPAT_DIRTY}, "marked dirty"),
        ({"incompatible": formats.QCOW2_INCOMPAT_CORRUPT}, "marked corrupt"),
        ({"incompatible": 1 << 9}, "unknown incompatible features 0x200"),
        ({"crypt": 1}, "encrypted"),
        ({"version": 4}, "version 4 is not supported"),
        ({"cluster_bits": 30}, "cluster_bits 30 out of range"),
        ({"size": 0}, "virtual size 0"),
        ({"size": 3 * GIB}, "more than the 2147483648 allowed"),
        ({"l1_size": 1, "size": GIB}, "claims 1073741824 bytes but its L1 table covers only"),
    ],
    ids=[
        "backing",
        "data-file",
        "dirty",
        "corrupt",
        "unknown-feature",
        "encrypted",
        "version",
        "cluster-bits",
        "empty",
        "too-big",
        "lying-size",
    ],
)
def test_unsafe_or_lying_qcow2_headers_are_refused(changes, message):
    with pytest.raises(ValidationError, match=message):
        formats.parse_qcow2_header(qcow2_header(**changes), limit=2 * GIB)


def test_a_truncated_header_is_refused():
    with pytest.raises(ValidationError, match="header truncated"):
        formats.parse_qcow2_header(qcow2_header()[:40], limit=GIB)


def test_qemu_img_is_handed_the_image_with_backing_disabled(tmp_path):
    argv = qemuimg.convert_argv(tmp_path / 'we"ird.qcow2', tmp_path / "out.raw")
    assert argv[:7] == ["qemu-img", "convert", "-q", "-O", "raw", "-S", "64k"]
    spec = argv[7]
    assert spec.startswith("json:") and '"backing": null' in spec
    assert '"filename": "' + str(tmp_path) + '/we\\"ird.qcow2"' in spec


INFO = """{
 "virtual-size": 2147483648, "filename": "x", "cluster-size": 65536, "format": "qcow2",
 "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "corrupt": false}}
}"""


def test_qemu_img_info_gives_the_virtual_size():
    assert qemuimg.parse_info(INFO, "img") == 2 * GIB


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ('"filename": "x", "backing-filename": "/etc/shadow",', "backing file refused"),
        ('"filename": "x", "full-backing-filename": "/etc/shadow",', "backing file refused"),
        ('"filename": "x", "format-specific": {"data": {"data-file": "/d"}},', "data file"),
    ],
)
def test_qemu_img_info_double_checks_what_the_header_check_refuses(patch, message):
    text = INFO.replace('"filename": "x",', patch, 1)
    if "format-specific" in patch:
        text = text.replace(
            ',\n "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "corrupt": false}}',
            "",
        )
    with pytest.raises(ValidationError, match=message):
        qemuimg.parse_info(text, "img")


def test_qemu_img_info_garbage_is_an_error():
    with pytest.raises(ValidationError, match="no usable answer"):
        qemuimg.parse_info("not json", "img")
