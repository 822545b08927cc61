"""What one NIC needs, decided from Ganeti's environment and the settings (pure).

A NicPlan is the single description every builder (nft, links, binding)
works from, so up and down agree on what "this NIC's configuration" is.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ganeti_ext import firewall
from ganeti_ext.environ.nic import NicRequest
from ganeti_ext.errors import ValidationError
from ganeti_ext.inet import eui64_address
from ganeti_ext.network.settings import Settings

LINK_LOCAL = ipaddress.IPv6Network("fe80::/64")


@dataclass(frozen=True)
class NicPlan:
    tap: str
    instance: str | None
    mode: str  # bridged | routed | openvswitch
    link: str | None  # bridge (bridged), routing table (routed), OVS switch
    mac: str | None
    ipv4: ipaddress.IPv4Address | None
    ipv6: ipaddress.IPv6Address | None  # EUI-64 in the network's /64
    subnet: ipaddress.IPv4Network | None
    gateway: ipaddress.IPv4Address | None
    subnet6: ipaddress.IPv6Network | None
    gateway6: ipaddress.IPv6Address | None
    network_tags: tuple[str, ...]
    profile: str | None  # None: no firewall rules at all
    nfdhcpd: bool
    private_filtered: bool
    # IPv4 NIC on a `masq` network: its traffic leaving the host by any other interface
    # than its own (LINK, or the tap when routed) takes the host's address.
    masq: bool
    # Routed NIC on an `ip-less-routed` network: the host routes it (see plan_nic).
    ip_less_routed: bool
    mac_prefix: str | None
    vlan: str | None
    # Whether source IPv4/IPv6 are restricted: on every NIC whose addresses are known
    # (a managed network, or an IP given); a NIC on a plain link keeps only MAC checks.
    restrict_ipv4: bool
    restrict_ipv6: bool

    @property
    def link_local(self) -> ipaddress.IPv6Address | None:
        return eui64_address(LINK_LOCAL, self.mac) if self.mac else None

    @property
    def firewalled(self) -> bool:
        return self.profile in ("protected", "limited")


def plan_nic(request: NicRequest, settings: Settings) -> NicPlan:
    """The plan for one NIC; raises ValidationError for what cannot be configured."""
    mode = request.mode or "bridged"
    link = request.link or request.bridge
    if mode in ("bridged", "openvswitch") and not link:
        raise ValidationError(f"{request.interface}: {mode} NIC without LINK")
    network = request.network
    tags = network.tags if network else ()
    # Routed mode, as upstream snf-network did it: the tap always comes up with the
    # constant MAC, and only the `ip-less-routed` network tag makes this host the VM's
    # router: host routes in the table named by LINK, `ip rule iif <tap>`, proxy ARP/NDP
    # (the VM's gateway answered on the tap, the VM's addresses on the uplinks), no IP
    # of the host's own in the network, gratuitous ARP / unsolicited NA. Without the tag
    # upstream left the routing to the site (its ifup-extra script, a routing daemon),
    # and so does this; anti-spoofing and the firewall profile apply either way (upstream
    # applied a routed NIC's profile only under the tag, leaving the others unfiltered).
    ip_less_routed = mode == "routed" and settings.ip_less_routed_tag in tags
    if ip_less_routed and request.ip is None:
        raise ValidationError(
            f"{request.interface}: routed NIC on an {settings.ip_less_routed_tag}"
            " network without an IP address"
        )
    ipv4 = request.ip if isinstance(request.ip, ipaddress.IPv4Address) else None
    subnet6 = network.subnet6 if network else None
    ipv6 = None
    if subnet6 is not None and subnet6.prefixlen == 64 and request.mac:
        ipv6 = eui64_address(subnet6, request.mac)
    keys = firewall.nic_keys(request.index, request.name, request.uuid)
    return NicPlan(
        tap=request.interface,
        instance=request.instance,
        mode=mode,
        link=link,
        mac=request.mac,
        ipv4=ipv4,
        ipv6=ipv6,
        subnet=network.subnet if network else None,
        gateway=network.gateway if network else None,
        subnet6=subnet6,
        gateway6=network.gateway6 if network else None,
        network_tags=tags,
        profile=firewall.profile_for(request.instance_tags, keys, settings.firewall_tag_prefix),
        nfdhcpd=settings.nfdhcpd_tag in tags and request.mac is not None,
        private_filtered=settings.private_filtered_tag in tags,
        masq=settings.masq_tag in tags and ipv4 is not None,
        ip_less_routed=ip_less_routed,
        mac_prefix=network.mac_prefix if network else None,
        vlan=request.vlan,
        restrict_ipv4=ipv4 is not None or (network is not None and network.subnet is not None),
        restrict_ipv6=network is not None and (subnet6 is not None or network.subnet is not None),
    )
