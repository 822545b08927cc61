"""InitializeDatasource: a NoCloud seed for images with cloud-init.

meta-data (instance id and hostname), user-data (cloud_userdata, or an empty
cloud-config) and network-config (version 2: static IPv4 and IPv6 included, where
upstream overwrote its own keys and dropped IPv6) in /var/lib/cloud/seed/nocloud.
Images without cloud-init are left alone.
"""

from __future__ import annotations

import json

from ganeti_ext.osdef.tasks import netconf
from ganeti_ext.osdef.tasks.guest import Owner

NAME = "InitializeDatasource"
INPUTS = ("hostname", "instance_id", "cloud_userdata", "network")
SEED = "/var/lib/cloud/seed/nocloud"


def has_cloud_init(ctx, guest) -> bool:
    wanted = ctx.property("CLOUD_INIT").strip().lower()
    if wanted in ("no", "false", "0", "off"):
        return False
    return wanted in ("yes", "true", "1", "on") or guest.exists("/etc/cloud/cloud.cfg")


def run(ctx) -> None:
    guest = ctx.require_guest()
    if not has_cloud_init(ctx, guest):
        return
    meta = {"instance-id": ctx.config["instance_id"], "local-hostname": ctx.config["hostname"]}
    guest.write_file(f"{SEED}/meta-data", json.dumps(meta) + "\n", make_parents=_root())
    userdata = ctx.config.get("cloud_userdata") or "#cloud-config\n{}\n"
    guest.write_file(f"{SEED}/user-data", userdata, mode=0o600, make_parents=_root())
    network = ctx.config.get("network") or {}
    if network.get("nics"):
        document = netconf.version2(network["nics"], network.get("nameservers") or [])
        guest.write_file(
            f"{SEED}/network-config", json.dumps(document, indent=2) + "\n", make_parents=_root()
        )
        ctx.config["cloud_init_seeded"] = True
    ctx.report.info("cloud-init seeded (NoCloud)")


def _root() -> Owner:
    return Owner(0, 0)
