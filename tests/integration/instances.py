"""Helpers for integration tests that create instances and look at their storage."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from labkit import settings

STORE = Path(settings.ARCHIPELAGO_STORE)


def add_instance(
    lab,
    name: str,
    *,
    hypervisor: str = "fake",
    template: str = "ext",
    disk_size: str = "64M",
    osparams: tuple[str, ...] = ("img_id=null",),
    node: str | None = None,
    check: bool = True,
    extra: tuple[str, ...] = (),
):
    argv = ["gnt-instance", "add", "-t", template, "-o", "snf-image+default"]
    if osparams:
        # One -O: a repeated -O replaces the earlier ones. Commas in values are escaped.
        argv += ["-O", ",".join(param.replace(",", "\\,") for param in osparams)]
    if template == "ext":
        argv += ["--disk", f"0:size={disk_size},provider=archipelago"]
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
    """The archipelago volume file and metadata of a Ganeti disk."""
    for meta_file in (STORE / "meta").glob("*.json"):
        meta = json.loads(meta_file.read_text())
        if meta.get("uuid") == disk_uuid:
            return STORE / "volumes" / meta["name"], meta
    raise AssertionError(f"no archipelago volume for disk {disk_uuid}")


def loops_of(path: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]
