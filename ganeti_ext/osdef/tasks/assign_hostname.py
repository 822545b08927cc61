"""AssignHostname: the instance's name as /etc/hostname, and in /etc/hosts for 127.0.1.1."""

from __future__ import annotations

NAME = "AssignHostname"
INPUTS = ("hostname",)


def hosts_with(hosts: str | None, hostname: str) -> str:
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    lines = [line for line in (hosts or "").splitlines() if not line.startswith("127.0.1.1")]
    if not any(line.split()[:1] == ["127.0.0.1"] for line in lines):
        lines.insert(0, "127.0.0.1\tlocalhost")
    index = next((i + 1 for i, line in enumerate(lines) if line.startswith("127.0.0.1")), 0)
    lines.insert(index, f"127.0.1.1\t{names}")
    return "\n".join(lines) + "\n"


def run(ctx) -> None:
    guest = ctx.require_guest()
    hostname = ctx.config["hostname"]
    guest.write_file("/etc/hostname", hostname + "\n")
    guest.write_file("/etc/hosts", hosts_with(guest.read_text("/etc/hosts"), hostname))
