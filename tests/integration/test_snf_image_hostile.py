"""snf-image against hostile images: each fails the Ganeti job with one line naming the
image and the problem (or, for traps inside the image, succeeds without falling in),
leaves no helper running and no temporary file, and never touches a host file."""

from __future__ import annotations

import glob
import json
import lzma
import os
import struct
import subprocess
import textwrap
import time
import uuid
from pathlib import Path

import guest_images as images
import pytest
from instances import add_instance
from test_snf_image import KEY, PASSWORD, disk_path, publish, unpublish  # noqa: F401

from ganeti_ext.osdef.helper import vm
from labkit import settings
from labkit.sh import in_node


@pytest.fixture(scope="module")
def workdir(lab, tmp_path_factory):
    return tmp_path_factory.mktemp("hostile")


@pytest.fixture(scope="module")
def good_raw(workdir):
    return images.disk_image(workdir / "good.raw", fs="ext4")


def helper_processes() -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"snf-image-helper" in cmdline and b"qemu" in cmdline:
                found.append(entry)
    return found


def nothing_left() -> None:
    assert helper_processes() == [], "the helper VM is gone"
    assert glob.glob("/tmp/snf-image-helper-*") == [], "no helper work directory is left"
    assert os.listdir("/var/lib/snf-image/tmp") == [], "no scratch file is left"


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as ext4's metadata checksums use it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def failing(lab, instance_name, message, size="512M", **osparams):
    name = instance_name()
    params = {"img_passwd": PASSWORD, "auth_keys": KEY, **osparams}
    proc = add_instance(
        lab, name, disk_size=size, check=False,
        osparams=tuple(f"{k}={v}" for k, v in params.items()),
    )  # fmt: skip
    assert proc.returncode != 0
    logs = sorted(glob.glob(f"/var/log/ganeti/os/add-snf-image+default-{name}-*"))
    if logs:  # refused by the create script
        text = Path(logs[-1]).read_text()
        last = text.strip().splitlines()[-1]
        prefix = "snf-image-create: error: "
    else:  # refused by the verify script, before Ganeti made any disk
        text = proc.stdout + proc.stderr
        last = text.strip().splitlines()[-1].split("output: ", 1)[-1]
        prefix = "snf-image-verify: error: "
    assert last.startswith(prefix), last
    assert message in last, last
    assert "Traceback" not in text
    nothing_left()
    return last


def test_a_backing_file_is_never_opened(lab, instance_name, workdir):
    trap = workdir / "trap.fifo"
    os.mkfifo(trap)  # opening it for reading would hang the job: it must not be opened
    image = workdir / "backed.qcow2"
    subprocess.run(  # -u: qemu-img itself must not open the trap either
        [
            "qemu-img",
            "create",
            "-q",
            "-u",
            "-f",
            "qcow2",
            "-b",
            str(trap),
            "-F",
            "raw",
            str(image),
            "64M",
        ],
        check=True,
    )
    failing(
        lab, instance_name, "has a backing file: refused", img_id=publish(image), img_format="qcow2"
    )


def test_bombs_bigger_than_the_disk(lab, instance_name, workdir):
    qcow = workdir / "huge.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(qcow), "1T"], check=True)
    failing(lab, instance_name, "is more than the disk's", img_id=publish(qcow), img_format="qcow2")
    raw = bytearray(600 * images.MIB)
    raw[510:512] = b"\x55\xaa"
    bomb = workdir / "bomb.raw.xz"
    bomb.write_bytes(lzma.compress(bytes(raw), preset=0))
    assert bomb.stat().st_size < 1 << 20
    failing(lab, instance_name, "does not fit", img_id=publish(bomb), img_format="diskdump")


def test_a_truncated_download_and_a_wrong_checksum(lab, instance_name, workdir, good_raw):
    server = textwrap.dedent(f"""
        import http.server
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data = open({str(good_raw)!r}, "rb").read()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 3])
        http.server.HTTPServer(("127.0.0.1", 8099), H).serve_forever()
    """)  # fmt: skip
    process = subprocess.Popen(in_node(settings.MASTER, ["python3", "-c", server]))
    try:
        from labkit.handle import port_open

        deadline = time.monotonic() + 20
        while not port_open("127.0.0.1", 8099, settings.MASTER.netns):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        failing(
            lab,
            instance_name,
            "is truncated",
            img_id="http://127.0.0.1:8099/x.raw",
            img_format="diskdump",
        )
    finally:
        process.terminate()
        process.wait()
    failing(lab, instance_name, "SHA-256 is", img_id=publish(good_raw), img_format="diskdump",
            img_checksum="sha256:" + "0" * 64)  # fmt: skip


def test_data_that_is_not_what_it_claims(lab, instance_name, workdir, good_raw):
    failing(
        lab,
        instance_name,
        "img_format is qcow2 but the data is raw",
        img_id=publish(good_raw),
        img_format="qcow2",
    )
    qcow = images.pack(good_raw, "qcow2")
    failing(
        lab,
        instance_name,
        "img_format is diskdump but the data is qcow2",
        img_id=publish(qcow),
        img_format="diskdump",
    )
    failing(
        lab,
        instance_name,
        "not an ext2/3/4 file system",
        img_id=publish(good_raw),
        img_format="extdump",
    )
    junk = workdir / "junk.raw"
    junk.write_bytes(os.urandom(1 << 20))
    failing(lab, instance_name, "no partition table", img_id=publish(junk), img_format="diskdump")


def test_broken_disks_fail_in_the_helper_with_the_reason(lab, instance_name, workdir, good_raw):
    corrupt_table = workdir / "corrupt-table.raw"
    data = bytearray(good_raw.read_bytes()[: 4 * images.MIB])
    data[446:510] = os.urandom(64)  # garbage partition entries, signature kept
    corrupt_table.write_bytes(bytes(data))
    failing(lab, instance_name, "its partition table reaches byte", img_id=publish(corrupt_table),
            img_format="diskdump")  # fmt: skip
    gpt = workdir / "corrupt-gpt.raw"
    subprocess.run(["truncate", "-s", "64M", str(gpt)], check=True)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(gpt)],
                   input="label: gpt\nstart=2048, type=L\n", text=True, check=True)  # fmt: skip
    with open(gpt, "r+b") as disk:  # both GPT headers: garbage after their signatures
        for offset in (512 + 8, 64 * images.MIB - 512 + 8):
            disk.seek(offset)
            disk.write(os.urandom(84))
    failing(lab, instance_name, "partition table", img_id=publish(gpt), img_format="diskdump")

    no_root = workdir / "no-root.raw"
    subprocess.run(["truncate", "-s", "64M", str(no_root)], check=True)
    subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(no_root)],
                   input="label: dos\nstart=2048, type=83\n", text=True, check=True)  # fmt: skip
    failing(
        lab,
        instance_name,
        "no Linux root file system",
        img_id=publish(no_root),
        img_format="diskdump",
    )

    dirty = workdir / "dirty.raw"
    subprocess.run(["cp", "--sparse=always", str(good_raw), str(dirty)], check=True)
    with open(dirty, "r+b") as disk:
        superblock_at = images.PART_START * 512 + 1024
        disk.seek(superblock_at)
        superblock = bytearray(disk.read(1024))
        struct.pack_into("<H", superblock, 0x3A, 0x0002)  # s_state: errors
        # Its checksum made right again: a file system with errors, not a broken one
        # (util-linux 2.41, Debian 13's, no longer reports an ext4 whose checksum is off).
        struct.pack_into("<I", superblock, 0x3FC, crc32c(superblock[:0x3FC]) ^ 0xFFFFFFFF)
        disk.seek(superblock_at)
        disk.write(superblock)
        disk.seek(images.PART_START * 512 + 5 * 4096)  # garbage over the inode table
        disk.write(os.urandom(4096))
    last = failing(lab, instance_name, "FilesystemResizeUnmounted", img_id=publish(dirty),
                   img_format="diskdump")  # fmt: skip
    assert "e2fsck" in last


def test_symlink_traps_stay_inside_the_image(lab, instance_name, workdir):
    canary = Path("/var/tmp/snf-image-test-canary")
    canary.write_text("host file\n")
    tree = images.linux_root(workdir / "trap-root")
    (tree / "etc/hostname").unlink()
    (tree / "etc/hostname").symlink_to(str(canary))
    (tree / "etc/hosts").unlink()
    (tree / "etc/hosts").symlink_to("../../../../../../../" + str(canary))
    (tree / "root/.ssh").symlink_to("/etc")
    image = images.disk_image(workdir / "traps.raw", root=tree)
    name = instance_name()
    params = (
        f"img_id={publish(image)}",
        "img_format=diskdump",
        f"img_passwd={PASSWORD}",
        f"auth_keys={KEY}",
    )
    proc = add_instance(lab, name, disk_size="512M", osparams=params, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert canary.read_text() == "host file\n"
    files = images.read_files(
        disk_path(lab, name, "ext"), "ext4", ["/etc/hostname", "/etc/authorized_keys"]
    )
    assert files["/etc/hostname"][0] == f"{name}\n".encode(), "a file of its own replaced the link"
    assert files["/etc/authorized_keys"] is None, "no key written through the .ssh link"
    log = sorted(glob.glob(f"/var/log/ganeti/os/add-snf-image+default-{name}-*"))[-1]
    assert "symbolic link" in Path(log).read_text()
    nothing_left()


def test_refusals_before_anything_is_written(lab, instance_name, good_raw):
    personality = json.dumps([{"path": "/etc/../../x", "contents": ""}])
    failing(lab, instance_name, "img_personality", img_id=publish(good_raw), img_format="diskdump",
            img_personality=personality)  # fmt: skip
    failing(lab, instance_name, "OSFAMILY windows is not supported yet", img_id=publish(good_raw),
            img_format="diskdump", img_properties='{"OSFAMILY": "windows"}')  # fmt: skip


@pytest.mark.parametrize(
    ("init", "message"),
    [
        ("while true; do echo INFO flood > /dev/ttyS1; done", "more than 200 lines"),
        ("sleep 3600", "no result within"),
        ("poweroff -f", "ended without reporting"),
    ],
    ids=["flood", "never-finishes", "silent"],
)
def test_a_misbehaving_helper_is_stopped(lab, workdir, init, message):
    """The host's bounds, with a helper whose /init misbehaves (the real one cannot)."""
    root = workdir / f"bad-helper-{uuid.uuid4().hex[:6]}"
    for sub in ("bin", "dev", "proc"):
        (root / sub).mkdir(parents=True)
    subprocess.run(["cp", "/bin/busybox", str(root / "bin/busybox")], check=True)
    (root / "init").write_text(
        "#!/bin/busybox sh\n/bin/busybox --install -s /bin\nmount -t devtmpfs d /dev\n"
        + init
        + "\n"
    )
    (root / "init").chmod(0o755)
    files = subprocess.run(["find", "."], cwd=root, capture_output=True, text=True).stdout
    disk = workdir / "scratch-disk.raw"
    subprocess.run(["truncate", "-s", "16M", str(disk)], check=True)
    with vm.workdir() as tmp:
        initrd = Path(tmp) / "initrd.cpio"  # the helper's user reads it: in its directory
        with open(initrd, "wb") as out:
            subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root,
                           input=files.encode(), stdout=out, check=True)  # fmt: skip
        initrd.chmod(0o644)
        config = Path(tmp) / "config.json"
        config.write_text("{}")
        kernel = Path("/var/lib/snf-image/helper/vmlinuz")
        spec = vm.HelperSpec(kernel, initrd, str(disk), config, Path(tmp), accel="tcg")
        with pytest.raises(vm.HelperFailed, match=message):
            vm.run_helper(spec, "snf-image-helper", 20)
    nothing_left()
