"""A small disk-booting image for fast tests: busybox and dropbear, booting in seconds.

Its disk holds GRUB, the lab's cloud kernel, an initramfs (busybox, dropbear, the virtio
modules) and a root partition with what snf-image personalizes: /etc/hostname, users,
/root/.ssh/authorized_keys and OpenSSH host keys. The initramfs mounts that partition,
takes its host name, keys and host key (converted for dropbear), gets a DHCP lease and
serves ssh; files written under /disk persist on the VM's disk.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

from labkit import debian_image, guest, images
from labkit.sh import run

IMAGES_DIR = images.IMAGES_DIR
SIZE_MIB = 192
INIT = r"""#!/bin/busybox sh
# ganeti-ext small image: busybox + dropbear, root partition at /disk.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /run /disk /root/.ssh /etc/dropbear /var/log
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts
for module in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci \
              virtio_blk failover net_failover virtio_net; do
    insmod "/lib/modules/$module.ko" 2>/dev/null
done
ip link set lo up
ip link set eth0 up
# The lease first, in the background: the rest (dropbearconvert takes 1 s under TCG)
# runs meanwhile. Once bound, an unsolicited ARP: a node that has been probing the
# address learns it now, not at its next ARP retry (2-3 s later).
cat > /etc/udhcpc-announce.script <<'SCRIPT'
#!/bin/sh
/etc/udhcpc.script "$@"
[ "$1" = bound ] && arping -U -c 1 -I "$interface" "$ip"
exit 0
SCRIPT
chmod 755 /etc/udhcpc-announce.script
udhcpc -i eth0 -s /etc/udhcpc-announce.script -t 5 -T 1 -A 2 -b -q >/dev/null 2>&1 &
tries=0  # the disk, up to 60 s on a loaded emulated machine
until [ -b /dev/vda1 ] || [ $tries -ge 300 ]; do sleep 0.2; tries=$((tries + 1)); done
[ -b /dev/vda1 ] || echo "SMALL: no /dev/vda1 after 60 s: no host name, keys or host key"
mount -t ext4 /dev/vda1 /disk
hostname "$(cat /disk/etc/hostname 2>/dev/null || echo small)"
cp /disk/root/.ssh/authorized_keys /root/.ssh/ 2>/dev/null
chmod 700 /root /root/.ssh; chmod 600 /root/.ssh/authorized_keys 2>/dev/null
echo "root:x:0:0:root:/root:/bin/sh" > /etc/passwd
echo "/bin/sh" > /etc/shells
if ! dropbearconvert openssh dropbear /disk/etc/ssh/ssh_host_ed25519_key \
        /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1; then
    dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key >/dev/null 2>&1
fi
dropbear -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
echo "SMALL: ready $(hostname)"
while true; do
    setsid cttyhack sh -l </dev/ttyS0 >/dev/ttyS0 2>&1
    sleep 1
done
"""
GRUB_CFG = """set timeout=0
set root=(hd0,msdos1)
linux /boot/vmlinuz console=ttyS0 quiet panic=-1
initrd /boot/initrd.img
boot
"""


def image_path() -> Path:
    """Named by its recipe: this module, the disk layout's and minimal root's code, and
    the lab guest's kernel and initramfs it takes its kernel, busybox and modules from."""
    recipe = hashlib.sha256()
    for source in (Path(__file__), Path(debian_image.__file__), Path(images.__file__),
                   *guest.ensure_assets()):  # fmt: skip
        recipe.update(source.read_bytes())
    return IMAGES_DIR / f"small-{recipe.hexdigest()[:12]}.raw"


def ensure_image() -> Path:
    path = image_path()
    if path.exists():
        return path
    kernel, lab_initrd = guest.ensure_assets()
    IMAGES_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=IMAGES_DIR) as tmp:
        work = Path(tmp)
        ramdisk = work / "initramfs"
        ramdisk.mkdir()
        # The lab guest's initramfs already has busybox, the virtio modules and udhcpc's hook.
        archive = gzip.decompress(lab_initrd.read_bytes())
        subprocess.run(["cpio", "-i", "-d", "--quiet"], cwd=ramdisk, input=archive, check=True)
        for tool in ("/usr/sbin/dropbear", "/usr/bin/dropbearconvert", "/usr/bin/dropbearkey"):
            _copy_with_libraries(Path(tool), ramdisk)
        (ramdisk / "init").write_text(INIT)
        (ramdisk / "init").chmod(0o755)
        files = subprocess.run(["find", "."], cwd=ramdisk, capture_output=True, text=True).stdout
        cpio = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=ramdisk,
            input=files.encode(),
            capture_output=True,
            check=True,
        ).stdout
        root = work / "root"
        images.minimal_root(root)
        (root / "root/.ssh").mkdir(mode=0o700)
        (root / "boot/grub").mkdir(parents=True)
        shutil.copy2(kernel, root / "boot/vmlinuz")
        (root / "boot/initrd.img").write_bytes(gzip.compress(cpio, compresslevel=1))
        (root / "boot/grub/grub.cfg").write_text(GRUB_CFG)
        disk = work / "disk.raw"
        debian_image.write_disk(root, disk, SIZE_MIB)
        disk.rename(path)
    for old in IMAGES_DIR.glob("small-*"):  # earlier recipes' images and their digests
        if not old.name.startswith(path.name):
            old.unlink()
    return path


def _copy_with_libraries(binary: Path, root: Path) -> None:
    from ganeti_ext.osdef.helper.build import parse_ldd

    target = root / str(binary).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    for library in parse_ldd(run(["ldd", binary]).stdout):
        copy = root / library.lstrip("/")
        if not copy.exists():
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(library).resolve(), copy)
