"""Guest assets for TCG instances: a Debian cloud kernel and a tiny busybox initramfs, cached."""

from __future__ import annotations

import gzip
import hashlib
import lzma
import shutil
import subprocess
import tempfile
from pathlib import Path

from ganeti_ext.osdef.helper.build import module_name, read_builtin
from labkit import settings
from labkit.sh import LabError, run

GUEST_ROOT = Path(__file__).resolve().parent / "guest-root"
KERNEL_META = "linux-image-cloud-amd64"
MODULES = (
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
)


def _kernel_package() -> str:
    """The versioned kernel package the cloud metapackage points at."""
    out = run(["apt-cache", "depends", KERNEL_META]).stdout
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Depends:") and "linux-image-" in line:
            return line.split()[1]
    raise LabError(f"apt-cache has no kernel behind {KERNEL_META} (run apt-get update?)")


def _modules_dir(unpacked: Path) -> Path:
    # Debian 13's kernel packages install under /usr/lib/modules (merged /usr).
    for base in ("lib/modules", "usr/lib/modules"):
        if (unpacked / base).is_dir():
            return next((unpacked / base).iterdir()) / "kernel"
    raise LabError("the kernel package holds no lib/modules or usr/lib/modules")


def _module(modules_dir: Path, module: str) -> bytes:
    """A module's bytes, uncompressed: Debian 13 ships .ko.xz, busybox insmod wants .ko."""
    plain = modules_dir / module
    if plain.exists():
        return plain.read_bytes()
    for suffix, decompress in ((".xz", lzma.decompress), (".zst", _unzstd)):
        packed = plain.with_name(plain.name + suffix)
        if packed.exists():
            return decompress(packed.read_bytes())
    raise LabError(f"kernel module {module} (.ko, .ko.xz or .ko.zst) not in the kernel package")


def _unzstd(data: bytes) -> bytes:
    import zstandard  # python3-zstandard, a host package of the lab

    return zstandard.ZstdDecompressor().decompress(data, max_output_size=64 << 20)


def assets() -> tuple[Path, Path]:
    """Paths of the guest kernel and initramfs (stable names, so hvparams never change)."""
    return settings.GUEST_DIR / "vmlinuz", settings.GUEST_DIR / "initrd.img"


def _init_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(GUEST_ROOT.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def ensure_assets() -> tuple[Path, Path]:
    kernel, initrd = assets()
    stamp = settings.GUEST_DIR / "stamp"
    wanted = _init_digest()
    if kernel.exists() and initrd.exists() and stamp.exists() and stamp.read_text() == wanted:
        return kernel, initrd
    settings.GUEST_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.CACHE_DIR) as tmp:
        work = Path(tmp)
        package = _kernel_package()
        # -o Sandbox: the download goes to a root-only temp dir, not _apt's.
        run(
            ["apt-get", "download", "-o", "APT::Sandbox::User=root", package], timeout=600, cwd=work
        )
        debs = list(work.glob("linux-image-*.deb"))
        if not debs:
            raise LabError(f"apt-get download {package} failed")
        unpacked = work / "unpacked"
        run(["dpkg-deb", "-x", debs[0], unpacked], timeout=300)
        vmlinuz = next((unpacked / "boot").glob("vmlinuz-*"))
        modules_dir = _modules_dir(unpacked)
        root = work / "root"
        for sub in ("bin", "lib/modules", "etc", "proc", "sys", "dev", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2("/bin/busybox", root / "bin/busybox")
        (root / "bin/sh").symlink_to("busybox")
        # Debian 13's cloud kernel builds the virtio core in, Debian 12's ships modules.
        builtin = read_builtin(modules_dir.parent)
        for module in MODULES:  # the init script loads those present, in its own order
            if module_name(module) not in builtin:
                target = root / "lib/modules" / Path(module).name
                target.write_bytes(_module(modules_dir, module))
        shutil.copy2(GUEST_ROOT / "init", root / "init")
        shutil.copy2(GUEST_ROOT / "udhcpc.script", root / "etc/udhcpc.script")
        for script in (root / "init", root / "etc/udhcpc.script"):
            script.chmod(0o755)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
        archive = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"],
            cwd=root,
            input="\n".join(files).encode(),
            capture_output=True,
            check=True,
        ).stdout
        tmp_initrd = initrd.with_suffix(".tmp")
        tmp_initrd.write_bytes(gzip.compress(archive))
        shutil.copy2(vmlinuz, kernel.with_suffix(".tmp"))
        kernel.with_suffix(".tmp").rename(kernel)
        tmp_initrd.rename(initrd)
    stamp.write_text(wanted)
    return kernel, initrd
