"""`snf-image-update-helper`: the helper VM's kernel and initramfs, from Debian packages.

The kernel is Debian's cloud kernel, fetched with `apt-get download` (no other
download) and unpacked, never installed. The initramfs holds busybox, the tools the
tasks run (sfdisk, blkid, e2fsck, resize2fs, xfs_growfs, btrfs, mkswap) with
their libraries, this host's Python with the part of its standard library the tasks
import (precompiled, in one zip), the tasks themselves, the kernel modules for virtio,
fw_cfg, xfs and btrfs, and /init. It is uncompressed: under emulation, decompressing
costs more than copying. The result replaces the old one as one set (under a lock a
helper run takes to open them), with a manifest.
"""

from __future__ import annotations

import json
import logging
import modulefinder
import os
import py_compile
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef.helper.freshness import PACKAGE_ROOT, code_record
from ganeti_ext.osdef.helper.vm import boot_files_lock

log = logging.getLogger(__name__)

KERNEL_PACKAGE = "linux-image-cloud-amd64"
TOOLS = (
    "sfdisk",
    "blkid",
    "blockdev",
    "e2fsck",
    "resize2fs",
    "mkswap",
    "xfs_growfs",
    "btrfs",
)
# Loaded at boot; the file system modules only when the root file system needs them
# (insmod of xfs and btrfs takes over a second under emulation).
KERNEL_MODULES = ("virtio_pci", "virtio_blk", "qemu_fw_cfg")
FS_MODULES = ("xfs", "btrfs")
# Compressed kernel modules (Debian 13 ships .ko.xz), unpacked for busybox insmod.
DECOMPRESSORS = {".xz": ["xz", "-dc"], ".zst": ["zstd", "-dc"], ".gz": ["gzip", "-dc"]}
# Not needed by the tasks and heavy to import or ship.
STDLIB_EXCLUDES = (
    "tkinter", "unittest", "pydoc", "doctest", "email", "http", "xml", "test", "lib2to3",
    "distutils", "asyncio", "multiprocessing", "sqlite3", "ssl", "urllib", "ensurepip",
    "idlelib", "turtledemo", "venv", "curses", "dbm", "pdb",
)  # fmt: skip
TASK_ENTRY = "ganeti_ext.osdef.tasks.__main__"
INIT = """#!/bin/busybox sh
# snf-image helper: run the personalization tasks on /dev/vda, report on ttyS1, power off.
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
for module in {modules}; do
    insmod "/lib/modules/$module.ko" || echo "insmod $module failed"
done
config=/sys/firmware/qemu_fw_cfg/by_name/opt/snf-image/config/raw
if [ -r "$config" ] && cp "$config" /tmp/config.json; then
    # A fixed hash seed: Python otherwise waits for the kernel's entropy pool, which
    # takes a second to fill in a VM without a hardware RNG.
    env -i PATH="$PATH" PYTHONHASHSEED=0 \
        python3 -S -B -m ganeti_ext.osdef.tasks /tmp/config.json /dev/vda /dev/ttyS1
else
    echo "ERROR the helper found no configuration" > /dev/ttyS1
fi
sync
poweroff -f
"""


def parse_ldd(text: str) -> list[str]:
    """The libraries `ldd` lists (absolute paths), the dynamic loader included."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if "=>" in parts:
            index = parts.index("=>")
            if index + 1 < len(parts) and parts[index + 1].startswith("/"):
                found.append(parts[index + 1])
        elif parts and parts[0].startswith("/"):
            found.append(parts[0])
    return found


def module_name(path: str) -> str:
    """ "kernel/drivers/virtio/virtio_pci.ko.xz" -> "virtio_pci" (the kernel's spelling)."""
    return os.path.basename(path).split(".ko")[0].replace("-", "_")


def builtin_names(modules_builtin: str) -> frozenset[str]:
    """The modules a kernel has built in, from its modules.builtin text: Debian 13's cloud
    kernel builds in virtio_pci, which Debian 12's ships as a module."""
    return frozenset(module_name(line) for line in modules_builtin.split() if line)


def read_builtin(modules_dir: Path) -> frozenset[str]:
    """The built-in module names listed in `modules_dir`/modules.builtin (none without it)."""
    listing = modules_dir / "modules.builtin"
    return builtin_names(listing.read_text()) if listing.exists() else frozenset()


def module_order(
    modules_dep: str, wanted: tuple[str, ...], builtin: frozenset[str] = frozenset()
) -> list[str]:
    """Kernel module files (relative to the modules directory) in load order, dependencies
    first, from a modules.dep text; a wanted module the kernel has built in needs none."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in modules_dep.splitlines():
        target, sep, rest = line.partition(":")
        if not sep:
            continue
        deps[target] = rest.split()
        by_name[module_name(target)] = target
    order: list[str] = []

    def visit(target: str) -> None:
        if target in order:
            return
        for dependency in deps.get(target, []):
            visit(dependency)
        order.append(target)

    for name in wanted:
        if name in builtin:
            continue
        if name not in by_name:
            raise ValidationError(f"the helper kernel has no module {name}")
        visit(by_name[name])
    return order


class Builder:
    def __init__(self, output: Path, run=subprocess.run) -> None:
        self.output = output
        self.run = run

    def _check(self, argv, **kwargs) -> subprocess.CompletedProcess:
        proc = self.run(argv, capture_output=True, text=True, **kwargs)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise ValidationError(f"{' '.join(map(str, argv[:3]))} failed: {tail}")
        return proc

    def build(self) -> dict:
        self.output.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=self.output) as tmp:
            work = Path(tmp)
            kernel_dir, version = self._kernel(work)
            root = work / "root"
            for sub in (
                "bin",
                "sbin",
                "dev",
                "proc",
                "sys",
                "tmp",
                "mnt",
                "lib/modules",
                "usr/bin",
                "usr/lib",
            ):
                (root / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy2(self._which("busybox"), root / "bin/busybox")
            os.symlink("busybox", root / "bin/sh")
            for tool in TOOLS:
                self._copy_binary(Path(self._which(tool)), root, f"/usr/bin/{tool}")
            modules = self._modules(kernel_dir, version, root)
            python, compiled = self._python(root)
            (root / "etc").mkdir(exist_ok=True)
            # Tools may look the running user up: give uid 0 a name.
            (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
            (root / "etc/group").write_text("root:x:0:\n")
            (root / "init").write_text(INIT.format(modules=" ".join(modules)))
            (root / "init").chmod(0o755)
            initrd = work / "initrd.img"
            files = self._check(["find", "."], cwd=root).stdout
            with open(initrd, "wb") as out:
                proc = self.run(
                    ["cpio", "-o", "-H", "newc", "--quiet"],
                    cwd=root,
                    input=files.encode(),
                    stdout=out,
                    stderr=subprocess.PIPE,
                )
                if proc.returncode != 0:
                    raise ValidationError("cpio failed building the helper's initramfs")
            manifest = {
                "kernel": version,
                "python": python,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "initrd_bytes": initrd.stat().st_size,
                "code": code_record(compiled),
            }
            shutil.copy2(next((kernel_dir / "boot").glob("vmlinuz-*")), work / "vmlinuz")
            (work / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
            with boot_files_lock(self.output, shared=False):  # one set, never a mix
                for name in ("vmlinuz", "initrd.img", "manifest.json"):
                    os.replace(work / name, self.output / name)
        log.info("helper built: kernel %s, python %s", version, python)
        return manifest

    def _which(self, tool: str) -> str:
        found = shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")
        if found is None:
            raise ValidationError(f"{tool} is not installed (the helper needs it)")
        return found

    def _kernel(self, work: Path) -> tuple[Path, str]:
        depends = self._check(["apt-cache", "depends", KERNEL_PACKAGE]).stdout
        package = next(
            (
                line.split()[1]
                for line in depends.splitlines()
                if line.strip().startswith("Depends:") and "linux-image-" in line
            ),
            None,
        )
        if package is None:
            raise ValidationError(f"apt knows no kernel behind {KERNEL_PACKAGE} (apt-get update?)")
        self._check(
            ["apt-get", "download", "-o", "APT::Sandbox::User=root", package], cwd=work, timeout=900
        )
        deb = next(work.glob("linux-image-*.deb"))
        unpacked = work / "kernel"
        self._check(["dpkg-deb", "-x", str(deb), str(unpacked)], timeout=600)
        deb.unlink()
        modules_root = unpacked / "lib/modules"
        if not modules_root.is_dir():
            modules_root = unpacked / "usr/lib/modules"
        version = next(modules_root.iterdir()).name
        base = unpacked if modules_root.parent.parent == unpacked else unpacked / "usr"
        self._check(["depmod", "-b", str(base), version])
        return unpacked, version

    def _modules(self, kernel_dir: Path, version: str, root: Path) -> list[str]:
        modules_dir = next(
            p
            for p in (
                kernel_dir / "lib/modules" / version,
                kernel_dir / "usr/lib/modules" / version,
            )
            if p.is_dir()
        )
        dep_text = (modules_dir / "modules.dep").read_text()
        builtin = read_builtin(modules_dir)
        order = module_order(dep_text, KERNEL_MODULES, builtin)
        fs_order = [m for m in module_order(dep_text, FS_MODULES, builtin) if m not in order]
        names = []
        for relative in order + fs_order:
            source = modules_dir / relative
            name = os.path.basename(relative).split(".ko")[0]
            target = root / "lib/modules" / f"{name}.ko"
            if relative.endswith(".ko"):
                shutil.copy2(source, target)
            else:  # .ko.xz / .ko.zst (Debian 13): busybox insmod wants them plain
                tool = DECOMPRESSORS.get(Path(relative).suffix)
                if tool is None:
                    raise ValidationError(f"kernel module {relative}: unknown compression")
                with open(target, "wb") as out:
                    self.run([*tool, str(source)], stdout=out, check=True)
            if relative in order:
                names.append(name)
        # For the tasks: what to load, in order, before mounting each file system.
        load_order = {
            fs: [
                os.path.basename(m).split(".ko")[0]
                for m in module_order(dep_text, (fs,), builtin)
                if m not in order
            ]
            for fs in FS_MODULES
        }
        (root / "lib/modules/fs-modules.json").write_text(json.dumps(load_order))
        return names

    def _copy_binary(self, source: Path, root: Path, destination: str) -> None:
        target = root / destination.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        for library in parse_ldd(self._check(["ldd", str(source)]).stdout):
            copy = root / library.lstrip("/")
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(library), copy)

    def _python(self, root: Path) -> tuple[str, dict[str, bytes]]:
        """This Python and the modules the tasks import, into `root`; returns its version
        and the package's sources that went in, by path (for the manifest)."""
        executable = Path(os.path.realpath(sys.executable))
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        self._copy_binary(executable, root, "/usr/bin/python3")
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        dynload = stdlib / "lib-dynload"
        zip_path = root / f"usr/lib/python{sys.version_info.major}{sys.version_info.minor}.zip"
        finder = modulefinder.ModuleFinder(excludes=list(STDLIB_EXCLUDES))
        finder.import_hook(TASK_ENTRY)
        from ganeti_ext.osdef import tasks

        for module in tasks.MODULES.values():
            finder.import_hook(f"ganeti_ext.osdef.tasks.{module}")
        startup = subprocess.run(
            [str(executable), "-S", "-E", "-c", "import sys; print(' '.join(sys.modules))"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        for name in [
            *startup,
            "runpy",
            "encodings.utf_8",
            "encodings.aliases",
            "encodings.ascii",
            "encodings.latin_1",
        ]:
            try:
                finder.import_hook(name)
            except ImportError:
                pass
        compiled: dict[str, bytes] = {}
        with (
            zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED) as archive,
            tempfile.TemporaryDirectory() as tmp,
        ):
            pyc, staged = Path(tmp) / "module.pyc", Path(tmp) / "module.py"
            for _, module in sorted(finder.modules.items()):
                source = module.__file__
                if not source:
                    continue
                if source.endswith(".so"):
                    self._copy_binary(Path(source), root, f"{dynload}/{os.path.basename(source)}")
                    continue
                path = Path(source)
                if path.is_relative_to(stdlib):
                    relative = path.relative_to(stdlib)
                elif path.is_relative_to(PACKAGE_ROOT):
                    relative = path.relative_to(PACKAGE_ROOT)
                    # Compiled from the very bytes the manifest records.
                    compiled[str(relative)] = path.read_bytes()
                    staged.write_bytes(compiled[str(relative)])
                    source = str(staged)
                else:
                    continue
                py_compile.compile(source, cfile=str(pyc), dfile=str(relative), doraise=True)
                archive.write(pyc, str(relative.with_suffix(".pyc")))
        return version, compiled
