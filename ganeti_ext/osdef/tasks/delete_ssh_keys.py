"""DeleteSSHKeys: the image's ssh host keys go; each instance gets its own, made by the
helper's ssh-keygen (never by a program of the image)."""

from __future__ import annotations

import os
import tempfile

from ganeti_ext.osdef.tasks.guest import Owner

NAME = "DeleteSSHKeys"
INPUTS = ("hostname",)
DEFAULT_TYPES = ("rsa", "ecdsa", "ed25519")
PREFIX = "ssh_host_"
SUFFIX = "_key"


def key_types(names: list) -> list:
    """The key types an image had (ssh_host_<type>_key), or the default set."""
    found = [
        name[len(PREFIX) : -len(SUFFIX)]
        for name in names
        if name.startswith(PREFIX) and name.endswith(SUFFIX)
    ]
    known = [kind for kind in found if kind in ("rsa", "ecdsa", "ed25519", "dsa")]
    return sorted(set(known) - {"dsa"}) or list(DEFAULT_TYPES)


def run(ctx) -> None:
    guest = ctx.require_guest()
    if not guest.is_dir("/etc/ssh"):
        return
    names = guest.listdir("/etc/ssh")
    for name in names:
        if name.startswith(PREFIX):
            guest.unlink(f"/etc/ssh/{name}")
    comment = f"root@{ctx.config.get('hostname', 'localhost')}"
    with tempfile.TemporaryDirectory() as work:
        for kind in key_types(names):
            target = os.path.join(work, f"{PREFIX}{kind}{SUFFIX}")
            ctx.system.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", target])
            with open(target, "rb") as private, open(target + ".pub", "rb") as public:
                guest.write_file(
                    f"/etc/ssh/{PREFIX}{kind}{SUFFIX}",
                    private.read(),
                    mode=0o600,
                    owner=Owner(0, 0),
                )
                guest.write_file(f"/etc/ssh/{PREFIX}{kind}{SUFFIX}.pub", public.read(), mode=0o644)
