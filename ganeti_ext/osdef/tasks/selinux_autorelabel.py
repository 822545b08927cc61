"""SELinuxAutorelabel: files written by the helper have no SELinux labels; an image that
enforces SELinux relabels itself on its first boot when /.autorelabel exists."""

from __future__ import annotations

NAME = "SELinuxAutorelabel"
INPUTS = ()


def selinux_enabled(config: str | None) -> bool:
    for line in (config or "").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.strip() == "SELINUX":
            return value.strip().strip("\"'").lower() in ("enforcing", "permissive")
    return False


def run(ctx) -> None:
    guest = ctx.require_guest()
    if selinux_enabled(guest.read_text("/etc/selinux/config")):
        guest.write_file("/.autorelabel", "", mode=0o644)
        ctx.report.info("SELinux: the image relabels its files on first boot")
