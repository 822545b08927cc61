"""The guest's users and groups: /etc/passwd, /etc/group and /etc/shadow, parsed and
edited as text (pure functions; the guest's own tools never run)."""

from __future__ import annotations

from ganeti_ext.osdef.tasks.context import TaskError


class Account:
    __slots__ = ("gid", "home", "name", "uid")

    def __init__(self, name: str, uid: int, gid: int, home: str) -> None:
        self.name, self.uid, self.gid, self.home = name, uid, gid, home


def parse_passwd(text: str) -> dict:
    accounts = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[2].isdigit() and fields[3].isdigit():
            accounts.setdefault(
                fields[0], Account(fields[0], int(fields[2]), int(fields[3]), fields[5])
            )
    return accounts


def parse_group(text: str) -> dict:
    groups = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            groups.setdefault(fields[0], int(fields[2]))
    return groups


def set_password_hashes(shadow: str, users: list, password_hash: str, today: int) -> tuple:
    """Shadow text with `users`' hash replaced (aging fields kept, last change = today).

    Returns (new text, users not found)."""
    if any(char in password_hash for char in ":\n\r\0"):
        raise TaskError("the password hash holds a character /etc/shadow cannot")
    wanted = set(users)
    lines = []
    for line in shadow.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] in wanted:
            fields[1] = password_hash
            fields[2] = str(today)
            wanted.discard(fields[0])
            line = ":".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n", sorted(wanted)


def authorized_keys_file(sshd_config: str | None, account: Account) -> str:
    """The path of the account's authorized_keys from sshd_config (first file listed)."""
    chosen = ".ssh/authorized_keys"
    for line in (sshd_config or "").splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].lower() == "match":
            break  # per-user overrides are beyond us: the global setting applies
        if len(words) >= 2 and words[0].lower() == "authorizedkeysfile":
            chosen = words[1]
            break
    path = chosen.replace("%%", "\0").replace("%h", account.home).replace("%u", account.name)
    path = path.replace("%U", str(account.uid)).replace("\0", "%")
    if not path.startswith("/"):
        path = account.home.rstrip("/") + "/" + path
    return path


def merge_keys(existing: str | None, keys: list) -> str:
    lines = [line for line in (existing or "").splitlines() if line.strip()]
    for key in keys:
        if key not in lines:
            lines.append(key)
    return "\n".join(lines) + "\n"
