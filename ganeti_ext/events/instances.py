"""Instance NICs, disks and hypervisor parameters, read from Ganeti's config.data JSON.

Finalized instance messages carry the instance's current configuration, as a cloud layer
needs it (network names, firewall profiles, disk sizes). It comes from the master's
/var/lib/ganeti/config.data, read as plain JSON: no Ganeti classes, no RPC.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ganeti_ext import firewall

log = logging.getLogger(__name__)


def instance_details(
    config: dict[str, Any], name: str, tag_prefix: str = firewall.DEFAULT_TAG_PREFIX
) -> dict[str, Any] | None:
    """instance_nics, instance_disks, instance_hvparams and tags of instance `name`
    (None: unknown)."""
    instance = next(
        (item for item in config.get("instances", {}).values() if item.get("name") == name),
        None,
    )
    if instance is None:
        return None
    return details_of(config, instance, tag_prefix)


def details_of(
    config: dict[str, Any], instance: dict[str, Any], tag_prefix: str = firewall.DEFAULT_TAG_PREFIX
) -> dict[str, Any]:
    """The message fields describing one instance entry of config.data."""
    networks = config.get("networks", {})
    tags = sorted(str(tag) for tag in instance.get("tags") or [])
    nics = []
    for index, nic in enumerate(instance.get("nics") or []):
        nicparams = nic.get("nicparams") or {}
        network = networks.get(nic.get("network") or "", {}).get("name")
        keys = firewall.nic_keys(index, nic.get("name"), nic.get("uuid"))
        nics.append(
            {
                "name": nic.get("name"),
                "network": network,
                "ip": nic.get("ip"),
                "mac": nic.get("mac"),
                "mode": nicparams.get("mode"),
                "link": nicparams.get("link"),
                "uuid": nic.get("uuid"),
                "firewall": firewall.profile_for(tags, keys, tag_prefix),
            }
        )
    all_disks = config.get("disks", {})
    disks = []
    for disk_ref in instance.get("disks") or []:
        # Ganeti >= 2.16 lists disk UUIDs and keeps the disks at the top level.
        disk = all_disks.get(disk_ref, {}) if isinstance(disk_ref, str) else disk_ref
        disks.append({"name": disk.get("name"), "size": disk.get("size"), "uuid": disk.get("uuid")})
    return {
        "instance_nics": nics,
        "instance_disks": disks,
        "instance_hvparams": _filled_hvparams(config, instance),
        "tags": tags,
    }


def _filled_hvparams(config: dict[str, Any], instance: dict[str, Any]) -> dict[str, Any]:
    # What the instance runs with: cluster defaults, then per-OS, then its own overrides.
    cluster = config.get("cluster", {})
    hypervisor = instance.get("hypervisor")
    os_name = (instance.get("os") or "").split("+", 1)[0]
    filled = dict((cluster.get("hvparams") or {}).get(hypervisor) or {})
    filled.update(((cluster.get("os_hvp") or {}).get(os_name) or {}).get(hypervisor) or {})
    filled.update(instance.get("hvparams") or {})
    return filled


class ConfigReader:
    """Reads config.data when it changed and keeps only what messages need.

    The whole configuration is dropped after each read; what stays is the compact
    per-instance details (a few hundred bytes per instance), so memory stays small and
    a burst of messages costs one parse per configuration version, not one per message.
    """

    def __init__(self, path: Path | str, tag_prefix: str = firewall.DEFAULT_TAG_PREFIX) -> None:
        self.path = Path(path)
        self.tag_prefix = tag_prefix
        self._stamp: tuple[int, int, int] | None = None
        self._index: dict[str, dict[str, Any] | None] = {}
        self._cluster: dict[str, Any] = {}
        self._problem: str | None = None

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
            if stamp == self._stamp:
                return
            config = json.loads(self.path.read_bytes())
            if not isinstance(config, dict):
                raise ValueError("not a JSON object")
        except OSError as err:
            self._report(f"cannot read Ganeti configuration {self.path}: {err.strerror}")
            return
        except ValueError as err:
            self._report(f"cannot parse Ganeti configuration {self.path}: {err}")
            return
        self._problem = None
        self._stamp = stamp
        cluster = config.get("cluster", {})
        self._cluster = {"name": cluster.get("cluster_name"), "uuid": cluster.get("uuid")}
        self._index = {
            item["name"]: details_of(config, item, self.tag_prefix)
            for item in (config.get("instances") or {}).values()
            if isinstance(item, dict) and item.get("name")
        }

    def _report(self, problem: str) -> None:
        # Once per problem, not once per message.
        if problem != self._problem:
            log.warning("%s", problem)
            self._problem = problem

    def instance(self, name: str) -> dict[str, Any] | None:
        self._refresh()
        return self._index.get(name)

    def cluster(self) -> dict[str, Any]:
        """{"name": ..., "uuid": ...} of the cluster (empty values if unreadable)."""
        self._refresh()
        return dict(self._cluster)
