"""Helpers for integration tests that create instances and look at their storage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from labkit import settings

STORE = Path(settings.ARCHIPELAGO_STORE)
# Tests about storage, networking and the update path run on blank disks: nothing for
# snf-image to personalize there (a blank disk with img_id=null is otherwise an error).
NOT_PERSONALIZED = ("img_id=null", 'img_properties={"EXCLUDE_ALL_TASKS": "yes"}')


def add_instance(
    lab,
    name: str,
    *,
    hypervisor: str = "fake",
    template: str = "ext",
    disk_size: str = "64M",
    origin: str | None = None,
    disk_params: str = "",
    osparams: tuple[str, ...] = NOT_PERSONALIZED,
    node: str | None = None,
    check: bool = True,
    extra: tuple[str, ...] = (),
):
    argv = ["gnt-instance", "add", "-t", template, "-o", "snf-image+default"]
    if osparams:
        # One -O: a repeated -O replaces the earlier ones. Commas in values are escaped.
        argv += ["-O", ",".join(param.replace(",", "\\,") for param in osparams)]
    if template == "ext":
        params = f",origin={origin}" if origin else ""
        params += f",{disk_params}" if disk_params else ""
        argv += ["--disk", f"0:size={disk_size},provider=archipelago{params}"]
    elif template != "diskless":
        argv += ["--disk", f"0:size={disk_size}"]
    argv += [
        "-H",
        hypervisor,
        "-B",
        f"memory={settings.GUEST_MEMORY_MB}",
        "--net",
        f"0:network={settings.NETWORK.name},ip=pool",
        "--no-name-check",
        "--no-ip-check",
        "-n",
        node or settings.MASTER.name,
        *extra,
        name,
    ]
    return lab.gnt(*argv, check=check)


def disk_uuids(lab, name: str) -> list[str]:
    out = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "disk.uuids", name).stdout
    return json.loads(out.strip().replace("'", '"'))


def volume_of(disk_uuid: str) -> tuple[Path, dict]:
    """The archipelago volume's data file and record of a Ganeti disk."""
    for record_file in (STORE / "volumes").glob("*/volume.json"):
        record = json.loads(record_file.read_text())
        if record.get("uuid") == disk_uuid:
            return record_file.parent / "data", record
    raise AssertionError(f"no archipelago volume for disk {disk_uuid}")


def archipelago(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The installed `archipelago` command on the host (the store is shared by the nodes)."""
    proc = subprocess.run(["archipelago", *args], capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"archipelago {' '.join(args)}: {proc.stderr}")
    return proc


def loops_of(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]
