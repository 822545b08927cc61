"""What the helper is told (pure): the tasks to run and everything they read.

Built from the checked OS parameters, the instance Ganeti describes and this node's
settings. Secrets arrive in their final form only: the password as a crypt(3) hash,
never in plain. The result goes to the helper through fw_cfg and is deleted after.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Mapping
from typing import Any

from ganeti_ext.environ.osapi import InstanceInfo, NicInfo
from ganeti_ext.errors import ValidationError
from ganeti_ext.osdef import hostkeys, tasks
from ganeti_ext.osdef.params import SnfImageParams
from ganeti_ext.osdef.passwd import hash_password
from ganeti_ext.osdef.settings import NetworkSection
from ganeti_ext.truth import is_yes

CONFIG_VERSION = 1
SUPPORTED_FAMILIES = ("linux",)


def properties(params: SnfImageParams) -> dict[str, str]:
    """Image properties, overridden by instance properties (both upper-cased)."""
    return {**params.img_properties, **params.inst_properties}


def check_os_family(props: Mapping[str, str], image: str) -> None:
    """Refuse what the helper cannot personalize, before anything is written."""
    family = props.get("OSFAMILY", "linux").strip().lower() or "linux"
    if family not in SUPPORTED_FAMILIES:
        raise ValidationError(
            f"image {image}: OSFAMILY {family} is not supported yet (only Linux images are "
            "personalized); nothing was written"
        )


def selected_tasks(props: Mapping[str, str]) -> list[str]:
    """The tasks to run, in order: all but EXCLUDE_TASK_<Name>; none with EXCLUDE_ALL_TASKS."""
    if is_yes(props.get("EXCLUDE_ALL_TASKS")):
        return []
    chosen = []
    for name in tasks.ORDER:
        excluded = is_yes(props.get(f"EXCLUDE_TASK_{name.upper()}"))
        if name in tasks.ALWAYS or not excluded:
            chosen.append(name)
    return chosen


def nic_config(nic: NicInfo, network: NetworkSection) -> dict[str, Any]:
    """One NIC for the guest: DHCP by network tag, else the static address Ganeti gave it;
    IPv6 by SLAAC where the network has a subnet6, DHCPv6 by tag."""
    info = nic.network
    tags = set(info.tags) if info else set()
    ipv4: dict[str, Any] = {"method": "none"}
    if tags & set(network.dhcp_tags) or (info is None and nic.ip is None):
        ipv4 = {"method": "dhcp"}
    elif nic.ip is not None and isinstance(nic.ip, ipaddress.IPv4Address):
        ipv4 = {"method": "static", "address": str(nic.ip)}
        ipv4["prefix"] = info.subnet.prefixlen if info and info.subnet else 32
        if info and info.gateway:
            ipv4["gateway"] = str(info.gateway)
    ipv6: dict[str, Any] = {"method": "none"}
    if info and info.subnet6:
        ipv6 = {"method": "dhcpv6" if tags & set(network.stateful_dhcpv6_tags) else "slaac"}
    return {"index": nic.index, "mac": nic.mac, "ipv4": ipv4, "ipv6": ipv6}


def helper_config(
    params: SnfImageParams,
    instance: InstanceInfo,
    network: NetworkSection,
    *,
    hostname: str | None = None,
    only: list[str] | None = None,
) -> dict[str, Any]:
    props = properties(params)
    password_hash = params.img_passwd_hash
    if params.img_passwd is not None:
        password_hash = hash_password(params.img_passwd, props.get("PASSWD_HASHING_METHOD"))
    chosen = selected_tasks(props) if only is None else only
    return {
        "version": CONFIG_VERSION,
        "tasks": chosen,
        "hostname": hostname or instance.name,
        "instance_id": instance.uuid or instance.name,
        "machine_id": secrets.token_hex(16),
        "properties": props,
        "password_hash": password_hash,
        "auth_keys": list(params.auth_keys),
        "personality": [
            {
                "path": entry.path,
                "contents": base64.b64encode(entry.contents).decode(),
                "owner": entry.owner,
                "group": entry.group,
                "mode": entry.mode,
            }
            for entry in params.img_personality
        ],
        "cloud_userdata": params.cloud_userdata,
        "ssh_host_keys": hostkeys.generate(f"root@{hostname or instance.name}")
        if "DeleteSSHKeys" in chosen
        else {},
        "network": {
            "nics": [nic_config(nic, network) for nic in instance.nics],
            "nameservers": list(network.nameservers),
        },
    }
