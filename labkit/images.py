"""Disk images the lab builds itself, without mounting anything: mkfs -d and sfdisk on files."""

from __future__ import annotations

from pathlib import Path

from labkit import settings
from labkit.sh import run

IMAGES_DIR = settings.IMAGES_DIR
# A minimal Linux root: what snf-image's tasks edit (users, host name, network).
MINIMAL_ROOT = {
    "etc/os-release": 'ID=labdemo\nNAME="ganeti-ext lab demo"\n',
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\nshadow:x:42:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/hostname": "localhost\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n",
    "etc/network/interfaces": "auto lo\niface lo inet loopback\n",
    "etc/ssh/sshd_config": "PermitRootLogin prohibit-password\n",
}


def minimal_root(root: Path) -> None:
    for relative, text in MINIMAL_ROOT.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    (root / "root").mkdir(mode=0o700, exist_ok=True)
    (root / "etc/shadow").chmod(0o640)


PARTITION_START = 1024 * 1024


def partitioned_ext4(path: Path, size_mib: int, root: Path, label: str = "dos") -> None:
    """A disk image with one Linux partition at 1 MiB holding an ext4 made from `root`."""
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    run(["truncate", "-s", f"{size_mib}M", tmp])
    layout = f"label: {label}\nstart=2048, type={'83' if label == 'dos' else 'L'}\n"
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", tmp], input=layout)
    run(
        [
            "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root",
            "-E", f"offset={PARTITION_START}", "-d", root, tmp, f"{size_mib - 2}M",
        ]
    )  # fmt: skip
    tmp.rename(path)


def debian_like_root(root: Path) -> None:
    """minimal_root plus what OS inspection tools look for (libguestfs, for bench/deploy)."""
    minimal_root(root)
    (root / "etc/os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
        'VERSION_ID="12"\nID=debian\n'
    )
    (root / "etc/debian_version").write_text("12.8\n")
    (root / "etc/fstab").write_text("LABEL=root / ext4 defaults 0 1\n")
    (root / "etc/machine-id").write_text("0" * 32 + "\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("the image's own host key\n")
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "var/lib/dpkg"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").write_text("")
