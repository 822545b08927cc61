"""Test images for snf-image, built here from files without mounting anything.

A minimal Debian-like root (users, host name, ssh, network), on ext4 (mkfs.ext4 -d),
xfs (mkfs.xfs with a proto file) or btrfs (mkfs.btrfs --rootdir), in a partition of an
msdos or GPT table (sfdisk on a file), raw or qcow2, optionally compressed. Reading the
results back mounts the test's own image read-only in a private mount namespace (the
product never does that; the test trusts what it built).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

MIB = 1 << 20
PART_START = 2048  # sectors
SSH_HOST_KEY = "image's own host key\n"


def linux_root(root: Path, *, cloud_init: bool = False, stack: str = "ifupdown") -> Path:
    files = {
        "etc/os-release": 'ID=debian\nVERSION_ID="12"\n',
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n",
        "etc/group": "root:x:0:\nshadow:x:42:\nuser:x:1000:\n",
        "etc/shadow": "root:*:19000:0:99999:7:::\nuser:!:19000:0:99999:7:::\n",
        "etc/hostname": "debian\n",
        "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n",
        "etc/machine-id": "00000000000000000000000000000000\n",
        "etc/ssh/sshd_config": "PermitRootLogin prohibit-password\n",
        "etc/ssh/ssh_host_ed25519_key": SSH_HOST_KEY,
        "etc/fstab": "# static file system information\n",
    }
    if stack == "ifupdown":
        files["etc/network/interfaces"] = "auto lo\niface lo inet loopback\n"
    elif stack == "netplan":
        files["etc/netplan/.keep"] = ""
    if cloud_init:
        files["etc/cloud/cloud.cfg"] = "datasource_list: [NoCloud]\n"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "root").mkdir(exist_ok=True)
    (root / "home/user").mkdir(parents=True, exist_ok=True)
    os.chown(root / "home/user", 1000, 1000)
    return root


def _proto(root: Path) -> str:
    """An xfs proto file describing `root` (mkfs.xfs -p, xfsprogs 6.1 has no -p DIR)."""
    lines = ["boot", "0 0"]

    def walk(directory: Path, depth: int) -> None:
        for entry in sorted(directory.iterdir()):
            info = entry.lstat()
            mode = f"{info.st_mode & 0o777:03o}"
            indent = " " * depth
            owner = f"{info.st_uid} {info.st_gid}"
            if entry.is_symlink():
                lines.append(f"{indent}{entry.name} l--{mode} {owner} {os.readlink(entry)}")
            elif entry.is_dir():
                lines.append(f"{indent}{entry.name} d--{mode} {info.st_uid} {info.st_gid}")
                walk(entry, depth + 1)
                lines.append(f"{indent}$")
            else:
                lines.append(f"{indent}{entry.name} ---{mode} {info.st_uid} {info.st_gid} {entry}")

    lines.append("d--755 0 0")
    walk(root, 1)
    lines.append("$")
    return "\n".join(lines) + "\n"


def file_system(path: Path, fs: str, root: Path, size_mib: int) -> None:
    subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
    if fs == "ext4":
        argv = ["mkfs.ext4", "-q", "-F", "-b", "4096", "-d", str(root), str(path)]
    elif fs == "xfs":
        proto = path.with_suffix(".proto")
        proto.write_text(_proto(root))
        argv = ["mkfs.xfs", "-q", "-f", "-p", str(proto), str(path)]
    elif fs == "btrfs":
        argv = ["mkfs.btrfs", "-q", "-f", "--rootdir", str(root), str(path)]
    elif fs == "vfat":
        argv = ["mkfs.vfat", str(path)] if shutil.which("mkfs.vfat") else ["true"]
    else:
        raise ValueError(fs)
    subprocess.run(argv, check=True, capture_output=True)


def disk_image(
    path: Path,
    *,
    fs: str = "ext4",
    label: str = "dos",
    size_mib: int = 320,
    root: Path | None = None,
) -> Path:
    """A partitioned disk image with one root partition at 1 MiB holding `fs`."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        tree = root or linux_root(Path(tmp) / "root")
        part = Path(tmp) / "part.img"
        part_mib = size_mib - 2
        file_system(part, fs, tree, part_mib)
        subprocess.run(["truncate", "-s", f"{size_mib}M", str(path)], check=True)
        kind = "83" if label == "dos" else "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        subprocess.run(
            ["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(path)],
            input=f"label: {label}\nstart={PART_START}, size={part_mib * 2048}, type={kind}\n",
            text=True,
            check=True,
        )
        subprocess.run(
            [
                "dd",
                f"if={part}",
                f"of={path}",
                "bs=1M",
                "seek=1",
                "conv=notrunc,sparse",
                "status=none",
            ],
            check=True,
        )
    return path


def pack(path: Path, how: str) -> Path:
    """`path` as qcow2, xz, zstd or gzip (or qcow2.xz); returns the new file."""
    if how == "raw":
        return path
    target = path.with_name(f"{path.name}.{how}")
    if how.startswith("qcow2"):
        qcow = path.with_name(f"{path.name}.qcow2")
        subprocess.run(
            ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-c", str(path), str(qcow)],
            check=True,
        )
        if how == "qcow2":
            return qcow
        source, how = qcow, how.split(".", 1)[1]
    else:
        source = path
    tool = {
        "xz": ["xz", "-T0", "-1", "-c"],
        "zstd": ["zstd", "-q", "-c"],
        "gz": ["gzip", "-1", "-c"],
    }[how]
    with open(target, "wb") as out:
        subprocess.run([*tool, str(source)], stdout=out, check=True)
    return target


@contextlib.contextmanager
def snapshot(disk: str):
    """A private copy of the disk (an attached volume cannot be loop-mounted again)."""
    with tempfile.TemporaryDirectory(dir="/var/tmp") as tmp:
        copy = Path(tmp) / "disk"
        subprocess.run(["cp", "--sparse=always", disk, str(copy)], check=True)
        yield str(copy)


def read_files(disk: str, fs: str, paths: list[str], *, offset: int = PART_START * 512) -> dict:
    """{path: (bytes, uid, gid, mode) or None} from the root file system of `disk`."""
    with snapshot(disk) as copy:
        return _read_files(copy, fs, paths, offset)


def _read_files(disk: str, fs: str, paths: list[str], offset: int) -> dict:
    script = [
        "set -e",
        f'mount -o ro,loop,offset={offset} -t {fs} {disk} "$1"',
    ]
    with tempfile.TemporaryDirectory() as mnt, tempfile.TemporaryDirectory() as out:
        for index, wanted in enumerate(paths):
            script.append(
                f'if [ -e "$1{wanted}" ] && [ ! -L "$1{wanted}" ]; then '
                f"stat -c '%u %g %a' \"$1{wanted}\" > {out}/{index}.stat; "
                f'cat "$1{wanted}" > {out}/{index}; fi'
            )
        script.append('umount "$1"')
        subprocess.run(["unshare", "-m", "sh", "-c", "\n".join(script), "sh", mnt], check=True)
        result = {}
        for index, wanted in enumerate(paths):
            data = Path(out, str(index))
            if data.exists():
                uid, gid, mode = Path(out, f"{index}.stat").read_text().split()
                result[wanted] = (data.read_bytes(), int(uid), int(gid), int(mode, 8))
            else:
                result[wanted] = None
        return result


def fs_size(disk: str, fs: str, *, offset: int = PART_START * 512) -> int:
    """The root file system's size in bytes (df of the mounted, read-only image)."""
    with snapshot(disk) as copy, tempfile.TemporaryDirectory() as mnt:
        disk = copy
        out = subprocess.run(
            ["unshare", "-m", "sh", "-c",
             f"mount -o ro,loop,offset={offset} -t {fs} {disk} \"$1\" && stat -f -c '%b %S' \"$1\"",
             "sh", mnt],
            check=True, capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        return int(out[0]) * int(out[1])
