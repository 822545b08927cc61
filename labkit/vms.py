"""Real VMs in the lab: the Debian image in the store, an ssh key for its root, and
reaching a VM from a node (ping, ssh) the way its owner would."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

from labkit import debian_image, settings, small_image
from labkit.settings import Node
from labkit.sh import LabError, in_node, run

KEY_FILE = settings.STATE_DIR / "vm-key"  # the lab's key for its VMs' root (ed25519)
# Ganeti backend parameters. Two vCPUs: qemu's TCG runs them on two host threads, and the
# Debian VM then takes 25.9 s from `gnt-instance add` to ssh instead of 31.7 s (bench/e2e).
DEBIAN_BACKEND = "memory=512,vcpus=2"
SMALL_BACKEND = "memory=128"
# Disk-booting VMs: no kernel of the lab's, GRUB on their own disk does it.
OWN_KERNEL = "kvm:kernel_path=,initrd_path=,serial_console=true"
SSH_OPTIONS = (
    "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
    "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR",
)  # fmt: skip


def public_key() -> str:
    if not KEY_FILE.exists():
        KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ganeti-ext-lab", "-f", KEY_FILE])
    return Path(f"{KEY_FILE}.pub").read_text().strip()


def debian_image_name() -> str:
    """The Debian image in the archipelago store (built and imported when missing)."""
    return _in_store(debian_image.ensure_image())


def small_image_name() -> str:
    """The small busybox + dropbear image in the store (built and imported when missing)."""
    return _in_store(small_image.ensure_image())


def _in_store(path: Path) -> str:
    digest = content_digest(path)
    # Named by content: a rebuild of the same recipe is not bit-identical, and an image
    # in the store is immutable.
    name = f"{path.stem.split('-')[0]}-{digest[:12]}"  # debian12-<sha256>, small-<sha256>
    run(["archipelago", "image", "import", path, "--name", name, "--sha256", digest, "--quiet"],
        timeout=600)  # fmt: skip
    return name


def add_argv(
    name: str,
    origin: str | None,
    *,
    node: Node,
    backend: str,
    profile: str = "limited",
    password: str | None = None,
    copy_of: str | None = None,
) -> list[str]:
    """`gnt-instance add` of a VM as a user of the cloud gets it: a clone of `origin`
    (image or snapshot) in the store, personalized by snf-image with the lab's key (and
    `password` as a secret OS parameter), booting from its own disk, with a NIC on the
    lab's network in firewall profile `profile`. With `copy_of` (an image in snf-image's
    directory) instead of an origin: the image written onto a blank disk, then
    personalized, as upstream snf-image deploys."""
    secret = ["--os-parameters-secret", f"img_passwd={password}"] if password else []
    disk = "0:size=3G,provider=archipelago" + (f",origin={origin}" if origin else "")
    image = f"img_id={copy_of},img_format=diskdump" if copy_of else "img_id=null"
    return [
        "gnt-instance", "add", "-t", "ext", "--disk", disk,
        "-o", "snf-image+default", "-O", f"{image},auth_keys={public_key()}", *secret,
        "-H", OWN_KERNEL, "-B", backend,
        "--net", f"0:network={settings.NETWORK.name},ip=pool",
        "--tags", f"synnefo:network:0:{profile}",
        "--no-name-check", "--no-ip-check", "-n", node.name, name,
    ]  # fmt: skip


def content_digest(path: Path) -> str:
    """SHA-256 of a built image, read in chunks once and kept beside it."""
    cached = path.with_name(f"{path.name}.sha256")
    if cached.exists() and cached.stat().st_mtime >= path.stat().st_mtime:
        return cached.read_text().strip()
    with open(path, "rb") as image:
        digest = hashlib.file_digest(image, "sha256").hexdigest()
    cached.write_text(digest + "\n")
    return digest


def ssh_argv(node: Node, ip: str, command: str) -> list[str]:
    public_key()
    return in_node(node, ["ssh", "-i", str(KEY_FILE), *SSH_OPTIONS, f"root@{ip}", command])


def ssh(node: Node, ip: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ssh_argv(node, ip, command), capture_output=True, text=True, timeout=timeout
    )


def pings(node: Node, ip: str) -> bool:
    # fping: Ganeti depends on it, so every node has it (iputils-ping may be absent).
    probe = ["fping", "-q", "-c", "1", "-t", "1000", ip]
    return run(in_node(node, probe), check=False).returncode == 0


def wait_for(what: str, probe, timeout: float, every: float = 0.5):
    """Call probe until it returns something true; LabError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise LabError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def wait_ssh(node: Node, ip: str, timeout: float = 180) -> str:
    """The VM's `hostname` over ssh, once it answers."""

    def probe() -> str | None:
        try:
            proc = ssh(node, ip, "hostname", timeout=30)
        except subprocess.TimeoutExpired:  # a handshake that hung: try again
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    return wait_for(f"ssh root@{ip}", probe, timeout)
