"""EnforcePersonality: the files the user asked for (img_personality), as asked.

Owners and groups are names resolved in the guest's own /etc/passwd and /etc/group
(unknown ones are an error, not root). Paths are resolved inside the guest's root:
neither ".." nor a symbolic link can lead out of it; missing directories are made,
owned by root.
"""

from __future__ import annotations

import base64

from ganeti_ext.osdef.tasks import accounts
from ganeti_ext.osdef.tasks.context import TaskError
from ganeti_ext.osdef.tasks.guest import Owner

NAME = "EnforcePersonality"
INPUTS = ("personality",)


def run(ctx) -> None:
    files = ctx.config.get("personality") or []
    if not files:
        return
    guest = ctx.require_guest()
    users = accounts.parse_passwd(guest.read_text("/etc/passwd") or "")
    groups = accounts.parse_group(guest.read_text("/etc/group") or "")
    for entry in files:
        path = entry["path"]
        if not path.startswith("/") or ".." in path.split("/"):
            raise TaskError(f"personality file {path!r}: must be an absolute path without '..'")
        uid = _lookup(users, entry.get("owner"), "user", path, lambda a: a.uid)
        gid = _lookup(groups, entry.get("group"), "group", path, lambda g: g)
        mode = entry.get("mode")
        guest.write_file(
            path,
            base64.b64decode(entry["contents"]),
            mode=0o440 if mode is None else int(mode),
            owner=Owner(uid, gid),
            make_parents=Owner(0, 0),
        )
    # One line for all: the helper's report is bounded in lines, the list is not.
    shown = ", ".join(entry["path"] for entry in files[:5])
    more = f" and {len(files) - 5} more" if len(files) > 5 else ""
    ctx.report.info(f"wrote {shown}{more}")


def _lookup(table, name, kind, path, pick) -> int:
    if not name:
        return 0
    if name not in table:
        raise TaskError(f"personality file {path}: no {kind} {name!r} in the image")
    return pick(table[name])
