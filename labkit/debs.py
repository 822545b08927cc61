"""Building the suite's .deb packages from this tree, and installing them with apt."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from labkit import host, settings
from labkit.sh import LabError, run

NFQUEUE_SCRIPT = settings.REPO_DIR / "packaging" / "build-netfilterqueue-deb"


def source_files() -> list[str]:
    """The files a clean clone would have, plus uncommitted work (so dev builds are honest)."""
    proc = subprocess.run(
        ["git", "-C", str(settings.REPO_DIR), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError("the lab builds from a git checkout of ganeti-ext (git ls-files failed)")
    names = [n for n in proc.stdout.decode().split("\0") if n]
    return sorted(n for n in names if (settings.REPO_DIR / n).is_file())


def source_digest(files: list[str]) -> str:
    digest = hashlib.sha256()
    for name in files:
        path = settings.REPO_DIR / name
        digest.update(name.encode() + b"\0")
        digest.update(oct(path.stat().st_mode & 0o111).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def build_suite() -> tuple[str, list[Path]]:
    """Build (or reuse) the debs of the current tree; returns (digest, deb paths)."""
    files = source_files()
    digest = source_digest(files)
    out_dir = settings.BUILD_DIR / f"suite-{digest}"
    debs = sorted(out_dir.glob("*.deb"))
    if debs:
        return digest, debs
    work = settings.BUILD_DIR / "work"
    shutil.rmtree(work, ignore_errors=True)
    src = work / "ganeti-ext"
    for name in files:
        target = src / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(settings.REPO_DIR / name, target)
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=1200)
    built = sorted(work.glob("*.deb"))
    missing = [
        p for p in settings.SUITE_PACKAGES if not any(d.name.startswith(p + "_") for d in built)
    ]
    if missing:
        raise LabError(f"dpkg-buildpackage did not produce: {' '.join(missing)}")
    for old in settings.BUILD_DIR.glob("suite-*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = settings.BUILD_DIR / "incoming"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for deb in built:
        shutil.copy2(deb, tmp / deb.name)
    tmp.rename(out_dir)
    shutil.rmtree(work, ignore_errors=True)
    return digest, sorted(out_dir.glob("*.deb"))


def build_netfilterqueue() -> Path | None:
    """python3-netfilterqueue, which Debian 12 lacks, built from its sdist (packaging/README.md);
    None where the archive has it (Debian 13): apt installs it as a dependency."""
    if run(["apt-cache", "madison", "python3-netfilterqueue"]).stdout.strip():
        return None
    out_dir = settings.BUILD_DIR / "netfilterqueue"
    proc = run([str(NFQUEUE_SCRIPT), str(out_dir)], timeout=900)
    deb = Path(proc.stdout.strip().splitlines()[-1])
    if not deb.is_file():
        raise LabError(f"{NFQUEUE_SCRIPT.name} printed no .deb path: {proc.stdout.strip()!r}")
    return deb


def install(digest: str, debs: list[Path], extra: list[Path]) -> bool:
    """apt-get install the debs unless this very build is installed; True if it installed."""
    marker = settings.INSTALLED_BUILD_FILE
    if (
        marker.exists()
        and marker.read_text().strip() == digest
        and not host.missing_packages(settings.SUITE_PACKAGES)
    ):
        return False
    # --reinstall: a dev build keeps its version number while its files change.
    host.apt_install(["--reinstall", *map(str, extra), *map(str, debs)], timeout=900)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(digest + "\n")
    return True
