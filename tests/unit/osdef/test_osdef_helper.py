"""The helper's host side, pure parts: the line protocol, qemu's command line, the
configuration, the initramfs builder's parsers, and the image-layout checks."""

from __future__ import annotations

import ipaddress
import struct
from pathlib import Path

import pytest

from ganeti_ext.environ.network import NetworkInfo
from ganeti_ext.environ.osapi import InstanceInfo, NicInfo
from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef import disklayout, tasks
from ganeti_ext.osdef.helper import build, config, protocol, vm
from ganeti_ext.osdef.params import parse_params
from ganeti_ext.osdef.settings import NetworkSection


def test_protocol_reads_tasks_warnings_and_one_outcome():
    reader = protocol.LineReader()
    events = reader.feed(b"TASK_START MountImage\nWARNING odd \x1b[31mthing\nTASK_E")
    events += reader.feed(b"ND MountImage\nTASK_START Evil\nnoise\nDONE\n")
    assert [(e.kind, e.task, e.text) for e in events] == [
        ("task-start", "MountImage", ""),
        ("warning", None, "odd [31mthing"),
        ("task-end", "MountImage", ""),
        ("done", None, ""),
    ]
    assert reader.ignored == 2
    with pytest.raises(protocol.ProtocolError, match="outcome twice"):
        reader.feed(b"ERROR late\n")


def test_protocol_bounds_lines_and_their_number():
    reader = protocol.LineReader()
    events = reader.feed(b"INFO " + b"x" * 5000)
    events += reader.feed(b"y" * 5000 + b"\nINFO next\n")
    assert [len(e.text) for e in events] == [protocol.MAX_TEXT, 4]
    flood = protocol.LineReader()
    with pytest.raises(protocol.ProtocolError, match="more than 200 lines"):
        flood.feed(b"INFO x\n" * 201)


def test_qemu_runs_without_network_or_defaults_and_gets_the_disk_as_fds():
    spec = vm.HelperSpec(Path("/k"), Path("/i"), "/dev/loop3", Path("/w/config.json"), Path("/w"),
                         disk_fds=(7, 8), cache="none", block_device=True)  # fmt: skip
    argv = vm.qemu_argv(spec)
    joined = " ".join(argv)
    for wanted in ("-nodefaults", "-nic none", "-no-user-config", "-no-reboot",
                   "-add-fd fd=7,set=1", "-add-fd fd=8,set=1",
                   "file.driver=host_device,file.filename=/dev/fdset/1",
                   "name=opt/snf-image/config,file=/w/config.json"):  # fmt: skip
        assert wanted in joined
    assert "/dev/loop3" not in joined, "qemu never opens the disk itself"
    assert argv[argv.index("-sandbox") + 1].startswith("on,")
    assert "elevateprivileges=deny" in argv[argv.index("-sandbox") + 1]
    assert "-accel tcg" in " ".join(vm.qemu_argv(spec))
    auto = vm.qemu_argv(
        vm.HelperSpec(Path("/k"), Path("/i"), "f", Path("c"), Path("w"), accel="auto")
    )
    assert "-accel kvm -accel tcg" in " ".join(auto)


def nic(tags=("nfdhcpd",), ip="198.51.100.5", subnet6="2001:db8:100::/64"):
    network = NetworkInfo(
        "net1", None, ipaddress.ip_network("198.51.100.0/24"), ipaddress.ip_address("198.51.100.1"),
        ipaddress.ip_network(subnet6) if subnet6 else None, None, None, tuple(tags),
    )  # fmt: skip
    return NicInfo(0, "aa:00:01:00:00:05", ipaddress.ip_address(ip) if ip else None, "bridged",
                   "br0", "br0", None, None, None, None, network)  # fmt: skip


def test_nic_configuration_follows_network_tags():
    settings = NetworkSection()
    assert config.nic_config(nic(), settings)["ipv4"] == {"method": "dhcp"}
    static = config.nic_config(nic(tags=()), settings)
    assert static["ipv4"] == {"method": "static", "address": "198.51.100.5", "prefix": 24,
                              "gateway": "198.51.100.1"}  # fmt: skip
    assert static["ipv6"] == {"method": "slaac"}
    assert config.nic_config(nic(tags=("dhcpv6",)), settings)["ipv6"] == {"method": "dhcpv6"}
    assert config.nic_config(nic(subnet6=None), settings)["ipv6"] == {"method": "none"}


def test_task_selection_and_os_family():
    assert config.selected_tasks({}) == list(tasks.ORDER)
    chosen = config.selected_tasks(
        {"EXCLUDE_TASK_DELETESSHKEYS": "yes", "EXCLUDE_TASK_MOUNTIMAGE": "1"}
    )
    assert "DeleteSSHKeys" not in chosen and "MountImage" in chosen
    assert config.selected_tasks({"EXCLUDE_ALL_TASKS": "yes"}) == []
    config.check_os_family({"OSFAMILY": "Linux"}, "img")
    with pytest.raises(ValidationError, match="image img: OSFAMILY freebsd is not supported yet"):
        config.check_os_family({"OSFAMILY": "freebsd"}, "img")


def test_the_helper_gets_hashes_never_the_password():
    params = parse_params(
        {"img_id": "null", "img_passwd": "plain secret", "auth_keys": "ssh-rsa AAAA k"}
    )
    instance = InstanceInfo("vm1", "u", None, None, (), "kvm", {}, {}, (), (nic(),))
    built = config.helper_config(params, instance, NetworkSection(), only=["AssignHostname"])
    assert "plain secret" not in repr(built)
    assert built["password_hash"].startswith("$6$") and built["ssh_host_keys"] == {}
    assert built["network"]["nics"][0]["mac"] == "aa:00:01:00:00:05"


LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f4d)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f4d)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f4d)
"""
MODULES_DEP = """\
kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko
kernel/fs/btrfs/btrfs.ko: kernel/crypto/xor.ko kernel/lib/raid6/raid6_pq.ko kernel/lib/libcrc32c.ko
kernel/lib/libcrc32c.ko:
kernel/crypto/xor.ko:
kernel/lib/raid6/raid6_pq.ko:
kernel/drivers/block/virtio_blk.ko.xz: kernel/drivers/virtio/virtio.ko.xz
kernel/drivers/virtio/virtio.ko.xz:
"""


def test_initramfs_builder_parsers():
    assert build.parse_ldd(LDD) == [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ]
    assert build.module_order(MODULES_DEP, ("btrfs", "xfs")) == [
        "kernel/crypto/xor.ko", "kernel/lib/raid6/raid6_pq.ko", "kernel/lib/libcrc32c.ko",
        "kernel/fs/btrfs/btrfs.ko", "kernel/fs/xfs/xfs.ko",
    ]  # fmt: skip
    assert build.module_order(MODULES_DEP, ("virtio_blk",))[-1].endswith("virtio_blk.ko.xz")
    with pytest.raises(ValidationError, match="no module zfs"):
        build.module_order(MODULES_DEP, ("zfs",))


def test_modules_the_kernel_has_built_in_are_not_loaded():
    # Debian 13's cloud kernel: virtio_pci built in (modules.builtin), no modules.dep line.
    builtin = build.builtin_names("kernel/drivers/virtio/virtio_pci.ko\nkernel/fs/ext4/ext4.ko\n")
    assert builtin == {"virtio_pci", "ext4"}
    assert build.module_order(MODULES_DEP, ("virtio_pci", "virtio_blk"), builtin) == [
        "kernel/drivers/virtio/virtio.ko.xz", "kernel/drivers/block/virtio_blk.ko.xz",
    ]  # fmt: skip
    assert build.module_order(MODULES_DEP, ("virtio_pci",), builtin) == []


def test_built_in_modules_are_read_from_modules_builtin(tmp_path):
    # The helper's builder and the lab's guest builder both read them so.
    version = tmp_path / "6.12.57+deb13-cloud-amd64"
    version.mkdir()
    (version / "modules.builtin").write_text(
        "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n"
    )
    builtin = build.read_builtin(version)
    assert {"virtio", "virtio_ring"} <= builtin
    assert "virtio_net" not in builtin


def test_a_kernel_without_the_listing_has_nothing_built_in(tmp_path):
    assert build.read_builtin(tmp_path) == frozenset()


def mbr(entries, gpt_last_usable=None):
    head = bytearray(64 * 1024)
    for index, (kind, start, count) in enumerate(entries):
        struct.pack_into(
            "<B3sB3sII", head, 446 + 16 * index, 0, b"\0\0\0", kind, b"\0\0\0", start, count
        )
    head[510:512] = b"\x55\xaa"
    if gpt_last_usable is not None:
        head[512:520] = b"EFI PART"
        struct.pack_into("<Q", head, 512 + 48, gpt_last_usable)
    return bytes(head)


def test_the_size_a_partition_table_needs():
    assert disklayout.required_size(mbr([(0x83, 2048, 4096)])) == (2048 + 4096) * 512
    assert (
        disklayout.required_size(mbr([(0xEE, 1, 0xFFFFFFFF)], gpt_last_usable=10000)) == 10034 * 512
    )
    assert disklayout.required_size(bytes(1024)) == 0


def test_ext_superblock_and_extdump_prefix():
    head = bytearray(4096)
    struct.pack_into("<I", head, 1024 + 4, 1000)  # blocks
    struct.pack_into("<I", head, 1024 + 24, 2)  # 4 KiB blocks
    struct.pack_into("<H", head, 1024 + 56, 0xEF53)
    assert disklayout.ext_size(bytes(head)) == 1000 * 4096
    with pytest.raises(ValidationError, match="not an ext2/3/4 file system"):
        disklayout.ext_size(bytes(4096))
    prefix = disklayout.extdump_prefix(1000 * 4096)
    assert len(prefix) == 1024 * 1024 and prefix[510:512] == b"\x55\xaa"
    assert disklayout.required_size(prefix) == 1024 * 1024 + 1000 * 4096
