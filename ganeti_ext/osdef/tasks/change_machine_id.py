"""ChangeMachineId: a machine id of its own for every instance (not the image's).

Written as given by the host (a fresh random id), where the image keeps one: systemd's
/etc/machine-id and D-Bus's /var/lib/dbus/machine-id when it is a file of its own.
"""

from __future__ import annotations

NAME = "ChangeMachineId"
INPUTS = ("machine_id",)


def run(ctx) -> None:
    guest = ctx.require_guest()
    machine_id = ctx.config["machine_id"]
    guest.write_file("/etc/machine-id", machine_id + "\n", mode=0o444)
    if guest.symlink_or_file("/var/lib/dbus/machine-id") == "file":
        guest.write_file("/var/lib/dbus/machine-id", machine_id + "\n", mode=0o444)
