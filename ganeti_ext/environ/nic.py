"""The environment of NIC scripts: Ganeti 3.0's kvm-ifup -> /etc/ganeti/kvm-vif-bridge,
and Ganeti 3.2's /etc/ganeti/network/<mode>/{up,down} (same variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ganeti_ext.environ.network import NIC_MODES, NetworkInfo, read_network
from ganeti_ext.environ.reader import EnvReader, IPv4Or6Address
from ganeti_ext.errors import EnvError
from ganeti_ext.inet import is_ifname

# Linux ifnames: 1-15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace, not "." or "..".
# We accept the portable subset; the name ends up in ip/nft/iptables command lines.


@dataclass(frozen=True)
class NicRequest:
    interface: str  # the tap device
    instance: str | None
    mac: str | None
    ip: IPv4Or6Address | None
    mode: str | None
    link: str | None
    bridge: str | None
    vlan: str | None
    instance_tags: tuple[str, ...]  # TAGS: the instance's tags (firewall profiles)
    index: int | None
    name: str | None
    uuid: str | None
    network: NetworkInfo | None


def check_ifname(variable: str, name: str) -> str:
    """Return `name` if it is a valid Linux interface name, else raise EnvError."""
    if not is_ifname(name):
        raise EnvError(variable, f"not a valid interface name (1-15 of A-Za-z0-9_.-): {name!r}")
    return name


def parse(env: Mapping[str, str]) -> NicRequest:
    """Parse a NIC script's environment; INTERFACE is the only required variable."""
    reader = EnvReader(env)
    interface = check_ifname("INTERFACE", reader.required("INTERFACE"))
    link = reader.optional("LINK")
    bridge = reader.optional("BRIDGE")
    mode = reader.choice("MODE", NIC_MODES)
    # In routed mode LINK is a routing table, not an interface.
    if link is not None and mode != "routed":
        check_ifname("LINK", link)
    if bridge is not None:
        check_ifname("BRIDGE", bridge)
    return NicRequest(
        interface=interface,
        instance=reader.optional("INSTANCE"),
        mac=reader.mac("MAC"),
        ip=reader.ip("IP"),
        mode=mode,
        link=link,
        bridge=bridge,
        vlan=reader.optional("VLAN"),
        instance_tags=reader.words("TAGS"),
        index=reader.integer("INTERFACE_INDEX", minimum=0),
        name=reader.optional("INTERFACE_NAME"),
        uuid=reader.optional("INTERFACE_UUID"),
        network=read_network(reader, ""),
    )
