"""Bringing a node's processes to life: sshd in the node's namespace, private dirs for node 2."""

from __future__ import annotations

import os
import shlex
import shutil
import time
from pathlib import Path

from labkit import settings
from labkit.settings import Node
from labkit.sh import LabError, run, sshd_pid


def _sshd_config(node: Node) -> Path:
    config = settings.RUN_DIR / f"sshd_config-{node.short}"
    config.write_text(
        "# ganeti-ext lab: sshd of one lab node, inside its namespace\n"
        f"ListenAddress {node.ip}\n"
        f"PidFile {node.sshd_pidfile}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "AcceptEnv LANG\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    return config


def private_dir(node: Node, path: str) -> Path:
    return node.private_root / path.strip("/").replace("/", "-")


def _copy_tree_skeleton(source: str, target: Path) -> None:
    """The directories of source (modes and owners kept), none of its files."""
    for root, _dirs, _files in os.walk(source):
        relative = os.path.relpath(root, source)
        made = target / relative if relative != "." else target
        made.mkdir(parents=True, exist_ok=True)
        stat = os.stat(root)
        os.chown(made, stat.st_uid, stat.st_gid)
        made.chmod(stat.st_mode & 0o7777)


def private_mounts(node: Node) -> list[str]:
    """The host paths a secondary node sees privately."""
    return [*settings.NODE_PRIVATE_DIRS, *settings.NODE_LOCAL_STATE_DIRS]


def _prepare_private_dirs(node: Node) -> None:
    for path in settings.NODE_LOCAL_STATE_DIRS:
        # The mount point must exist even where a daemon creates its dir only at start.
        os.makedirs(path, exist_ok=True)
        private = private_dir(node, path)
        if not private.exists():
            _copy_tree_skeleton(path, private)
    for path in settings.NODE_PRIVATE_DIRS:
        private = private_dir(node, path)
        if private.exists():
            continue
        if path == "/etc/ssh":
            shutil.copytree("/etc/ssh", private, symlinks=True)
        else:
            private.mkdir(parents=True)
    for sub in ("os", "extstorage"):
        (private_dir(node, "/var/log/ganeti") / sub).mkdir(exist_ok=True)
    (private_dir(node, "/root/.ssh")).chmod(0o700)


def start_sshd(node: Node) -> None:
    if sshd_pid(node):
        return
    settings.RUN_DIR.mkdir(parents=True, exist_ok=True)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    config = _sshd_config(node)
    sshd = ["/usr/sbin/sshd", "-f", str(config)]
    if node.index == 1:
        run(["ip", "netns", "exec", node.netns, *sshd])
    else:
        # Everything Ganeti runs on node 2 descends from this sshd, so the private
        # mounts made here are what node 2's Ganeti sees.
        _prepare_private_dirs(node)
        mounts = " && ".join(
            f"mount --bind {shlex.quote(str(private_dir(node, path)))} {shlex.quote(path)}"
            for path in private_mounts(node)
        )
        script = f"{mounts} && exec {shlex.join(sshd)}"
        run(
            [
                "ip",
                "netns",
                "exec",
                node.netns,
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
            ]
        )
    for _ in range(50):
        if sshd_pid(node):
            return
        time.sleep(0.1)
    raise LabError(f"sshd of {node.name} did not start (see {settings.LOG_FILE})")


def authorize_master_key(node: Node) -> None:
    """Let the master's root key (made by `gnt-cluster init`) log in to a secondary node."""
    keys = [p for p in Path("/root/.ssh").glob("id_*.pub")]
    if not keys:
        raise LabError("the master has no root ssh key in /root/.ssh (did cluster init run?)")
    authorized = private_dir(node, "/root/.ssh") / "authorized_keys"
    present = authorized.read_text() if authorized.exists() else ""
    wanted = [k.read_text().strip() for k in keys]
    missing = [k for k in wanted if k not in present]
    if missing:
        with open(authorized, "a", encoding="ascii") as out:
            out.write("\n".join(missing) + "\n")
        authorized.chmod(0o600)
