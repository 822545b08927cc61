"""ChangePassword: the users' password hash in /etc/shadow, and the ssh keys they accept.

The users are the image's USERS property (root by default). The hash was made on the
host (PASSWD_HASHING_METHOD); the plain password never reaches the helper. Keys go to
each user's AuthorizedKeysFile as sshd_config names it, owned by that user; a .ssh that
is a symbolic link is left alone (with a warning).
"""

from __future__ import annotations

import stat
import time

from ganeti_ext.osdef.tasks import accounts
from ganeti_ext.osdef.tasks.context import TaskError
from ganeti_ext.osdef.tasks.guest import GuestPathError, Owner

NAME = "ChangePassword"
INPUTS = ("password_hash", "auth_keys")


def run(ctx) -> None:
    guest = ctx.require_guest()
    users = ctx.property("USERS", "root").split() or ["root"]
    password_hash = ctx.config.get("password_hash")
    if password_hash:
        shadow = guest.read_text("/etc/shadow")
        if shadow is None:
            raise TaskError("the image has no /etc/shadow")
        text, missing = accounts.set_password_hashes(
            shadow, users, password_hash, int(time.time() // 86400)
        )
        if missing:
            ctx.report.warning(f"no such user in /etc/shadow: {', '.join(missing)}")
        mode, owner = _shadow_mode_and_owner(guest)
        guest.write_file("/etc/shadow", text, mode=mode, owner=owner)
    keys = ctx.config.get("auth_keys") or []
    if keys:
        passwd = accounts.parse_passwd(guest.read_text("/etc/passwd") or "")
        sshd_config = guest.read_text("/etc/ssh/sshd_config")
        for user in users:
            account = passwd.get(user)
            if account is None:
                ctx.report.warning(f"no such user in /etc/passwd: {user}")
                continue
            _authorize(ctx, guest, account, sshd_config, keys)


def _authorize(ctx, guest, account, sshd_config, keys) -> None:
    path = accounts.authorized_keys_file(sshd_config, account)
    directory = path.rsplit("/", 1)[0]
    if guest.symlink_or_file(directory) == "symlink":
        ctx.report.warning(f"{directory} is a symbolic link: keys for {account.name} not written")
        return
    owner = Owner(account.uid, account.gid)
    try:
        guest.write_file(
            path,
            accounts.merge_keys(guest.read_text(path), keys),
            mode=0o600,
            owner=owner,
            make_parents=owner,
            parent_mode=0o700,
        )
    except GuestPathError as err:
        ctx.report.warning(f"keys for {account.name} not written: {err}")


def _shadow_mode_and_owner(guest) -> tuple[int, Owner]:
    """The image's own mode (0640 at most: Debian's 0640 root:shadow, RHEL's 0000 stay as
    they are) and group, with root as owner; Debian's default if it has none to keep."""
    current = guest.file_stat("/etc/shadow")
    if current is not None:
        return stat.S_IMODE(current.st_mode) & 0o640, Owner(0, current.st_gid)
    groups = accounts.parse_group(guest.read_text("/etc/group") or "")
    return 0o640, Owner(0, groups.get("shadow", 0))
