"""The Ganeti network description that OS scripts, hooks and NIC scripts all receive.

Ganeti exports it with the same field names under different prefixes: NIC_0_NETWORK_*
(OS scripts), GANETI_INSTANCE_NIC0_NETWORK_* and GANETI_NETWORK_* (hooks), NETWORK_*
(kvm-ifup).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ganeti_ext.environ.reader import EnvReader

NIC_MODES = ("bridged", "routed", "openvswitch")


@dataclass(frozen=True)
class NetworkInfo:
    name: str
    uuid: str | None
    subnet: ipaddress.IPv4Network | None
    gateway: ipaddress.IPv4Address | None
    subnet6: ipaddress.IPv6Network | None
    gateway6: ipaddress.IPv6Address | None
    mac_prefix: str | None
    tags: tuple[str, ...]


def read_network(reader: EnvReader, prefix: str) -> NetworkInfo | None:
    """The network under `<prefix>NETWORK_*`, or None when the NIC has no network."""
    name = reader.optional(f"{prefix}NETWORK_NAME")
    if name is None:
        return None
    subnet = reader.network(f"{prefix}NETWORK_SUBNET", version=4)
    subnet6 = reader.network(f"{prefix}NETWORK_SUBNET6", version=6)
    assert subnet is None or isinstance(subnet, ipaddress.IPv4Network)
    assert subnet6 is None or isinstance(subnet6, ipaddress.IPv6Network)
    return NetworkInfo(
        name=name,
        uuid=reader.optional(f"{prefix}NETWORK_UUID"),
        subnet=subnet,
        gateway=reader.ipv4(f"{prefix}NETWORK_GATEWAY"),
        subnet6=subnet6,
        gateway6=reader.ipv6(f"{prefix}NETWORK_GATEWAY6"),
        mac_prefix=reader.mac_prefix(f"{prefix}NETWORK_MAC_PREFIX"),
        tags=reader.words(f"{prefix}NETWORK_TAGS"),
    )
