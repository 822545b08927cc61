"""A real Debian 12 cloud image for the lab, from Debian packages at the machine's mirrors.

mmdebstrap makes the root (kernel, systemd, openssh-server, ifupdown with DHCP on eth0),
mkfs.ext4 -d puts it on the first partition of a raw disk, and GRUB's boot code goes
into the disk's first sectors by hand (boot.img in the MBR, core.img in the gap before
the partition, its blocklist pointed at itself): no loop device, no mount. The VM then
boots from its own disk with Ganeti's kernel_path empty, as cloud images do. The image
carries no ssh host keys and an empty machine-id: snf-image gives each VM its own.
Nothing boots to build it. Cached under the lab's cache directory by a digest of this recipe.
"""

from __future__ import annotations

import hashlib
import shutil
import struct
import tempfile
from pathlib import Path

from labkit import settings
from labkit.sh import LabError, run

IMAGES_DIR = settings.IMAGES_DIR
SIZE_MIB = 2048
PACKAGES = (
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "dbus",  # systemd-logind needs it, and logind turns ACPI power-off into a shutdown
    "openssh-server",
    "ifupdown",
    "isc-dhcp-client",
    "udev",
    "kmod",
    "iproute2",
    "netbase",
)
SUITE = "bookworm"
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "configfile")
# Units a VM of the lab does not need and that slow its boot under emulation.
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "systemd-timesyncd.service",
    "fstrim.timer",
)
FILES = {
    "etc/fstab": "LABEL=root / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/hostname": "debian\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n",
    "etc/network/interfaces": (
        "source /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n"
    ),
    "etc/network/interfaces.d/eth0": "allow-hotplug eth0\niface eth0 inet dhcp\n",
    "etc/machine-id": "",
}
GRUB_CFG = """set timeout=0
set root=(hd0,msdos1)
linux /boot/{kernel} root=LABEL=root ro console=ttyS0 net.ifnames=0 quiet
initrd /boot/{initrd}
boot
"""


INDEX_FORMAT = "$(REPO_URI) $(RELEASE) $(TARGET_OF)"


def host_codename() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise LabError("/etc/os-release names no VERSION_CODENAME: not a Debian release?")


def debian_mirrors(indextargets: str, codename: str, suite: str = SUITE) -> list[str]:
    """One-line apt sources for `suite` (+ -updates, -security) at the machine's own mirrors.

    `indextargets` is `apt-get indextargets --format INDEX_FORMAT`, `codename` the
    machine's release: whatever its apt layout (deb822 or sources.list) and release (12
    or 13), the mirrors it uses for its own release serve the other one too.
    """
    found = []
    for line in indextargets.splitlines():
        fields = line.split()
        if len(fields) != 3 or fields[2] != "deb":
            continue
        uri, release = fields[0], fields[1]
        name, dash, pocket = release.partition("-")
        if name == codename and pocket in ("", "updates", "security"):
            entry = f"deb {uri} {suite}{dash}{pocket} main"
            if entry not in found:
                found.append(entry)
    if not any(entry.split()[2] == suite for entry in found):
        raise LabError("no Debian mirror in this machine's apt sources (apt-get indextargets)")
    return found


def recipe_digest() -> str:
    """This module's source is the recipe: any change to it makes a new image."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def image_path() -> Path:
    return IMAGES_DIR / f"debian12-{recipe_digest()}.raw"


def ensure_image() -> Path:
    """The cached Debian image, built first if this recipe has none yet."""
    path = image_path()
    if path.exists():
        return path
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=IMAGES_DIR) as tmp:
        work = Path(tmp)
        root = work / "root"
        indextargets = run(["apt-get", "indextargets", "--format", INDEX_FORMAT]).stdout
        mirrors = debian_mirrors(indextargets, host_codename())
        run(
            ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(PACKAGES)}",
             SUITE, str(root), *mirrors],
            timeout=1800,
        )  # fmt: skip
        customize(root)
        disk = work / "disk.raw"
        write_disk(root, disk, SIZE_MIB)
        disk.rename(path)
    for old in IMAGES_DIR.glob("debian12-*"):  # earlier recipes' images and their digests
        if not old.name.startswith(path.name):
            old.unlink()
    return path


def customize(root: Path) -> None:
    for relative, text in FILES.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    kernel = next((root / "boot").glob("vmlinuz-*")).name
    initrd = next((root / "boot").glob("initrd.img-*")).name
    (root / "boot/grub").mkdir(parents=True, exist_ok=True)
    (root / "boot/grub/grub.cfg").write_text(GRUB_CFG.format(kernel=kernel, initrd=initrd))
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)


def write_disk(root: Path, disk: Path, size_mib: int) -> None:
    """A bootable disk: one ext4 partition (label root) made from `root`, and GRUB."""
    run(["truncate", "-s", f"{size_mib}M", disk])
    run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", disk],
        input="label: dos\nstart=2048, type=83, bootable\n")  # fmt: skip
    run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "root", "-E", "offset=1048576",
         "-d", root, disk, f"{size_mib - 1}M"], timeout=600)  # fmt: skip
    core = disk.with_name("core.img")
    run(["grub-mkimage", "-O", "i386-pc", "-o", core, "-p", "(hd0,msdos1)/boot/grub",
         *GRUB_MODULES])  # fmt: skip
    install_grub((GRUB_DIR / "boot.img").read_bytes(), core.read_bytes(), disk)


def install_grub(boot_img: bytes, core_img: bytes, disk: Path) -> None:
    """GRUB's BIOS boot code into `disk` as grub-install would put it, by hand.

    boot.img's code goes into the MBR (its partition table kept) and is told that
    core.img starts at sector 1; core.img goes into the gap before the first partition,
    with the blocklist in its first sector pointing at its other sectors.
    """
    sectors = (len(core_img) + 511) // 512
    if 1 + sectors > 2048:
        raise LabError(f"GRUB's core.img ({sectors} sectors) does not fit before sector 2048")
    boot = bytearray(boot_img)
    core = bytearray(core_img) + bytes(sectors * 512 - len(core_img))
    struct.pack_into("<Q", boot, 0x5C, 1)  # GRUB_BOOT_MACHINE_KERNEL_SECTOR
    boot[0x64] = 0xFF  # GRUB_BOOT_MACHINE_BOOT_DRIVE: the drive the BIOS booted
    struct.pack_into("<QHH", core, 512 - 12, 2, sectors - 1, 0x820)  # start, length, segment
    with open(disk, "r+b") as out:
        mbr = bytearray(out.read(512))
        mbr[:440] = boot[:440]
        out.seek(0)
        out.write(mbr)
        out.write(core)
