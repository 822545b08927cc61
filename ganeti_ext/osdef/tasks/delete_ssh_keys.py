"""DeleteSSHKeys: the image's ssh host keys go; each instance gets fresh ones.

The keys are made on the host by its own ssh-keygen before the helper starts (under
emulation an RSA key takes the helper five seconds) and arrive with the configuration;
no program of the image ever runs. The image keeps the key types it had (all three
when it had none).
"""

from __future__ import annotations

from ganeti_ext.osdef.tasks.guest import Owner

NAME = "DeleteSSHKeys"
INPUTS = ("ssh_host_keys",)
PREFIX = "ssh_host_"
SUFFIX = "_key"


def key_types(names: list, offered: list) -> list:
    """The key types the image had (ssh_host_<type>_key) that we have, else all offered."""
    found = {
        name[len(PREFIX) : -len(SUFFIX)]
        for name in names
        if name.startswith(PREFIX) and name.endswith(SUFFIX)
    }
    kept = [kind for kind in offered if kind in found]
    return kept or list(offered)


def run(ctx) -> None:
    guest = ctx.require_guest()
    if not guest.is_dir("/etc/ssh"):
        return
    keys = ctx.config.get("ssh_host_keys") or {}
    names = guest.listdir("/etc/ssh")
    for name in names:
        if name.startswith(PREFIX):
            guest.unlink(f"/etc/ssh/{name}")
    for kind in key_types(names, sorted(keys)):
        private, public = keys[kind]["private"], keys[kind]["public"]
        path = f"/etc/ssh/{PREFIX}{kind}{SUFFIX}"
        guest.write_file(path, private, mode=0o600, owner=Owner(0, 0))
        guest.write_file(path + ".pub", public, mode=0o644)
