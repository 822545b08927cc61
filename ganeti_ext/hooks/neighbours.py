"""Proxy ARP/NDP entries an instance leaves behind on the node it migrated away from.

In routed networks the NIC script publishes the instance's addresses as proxy
neighbours on the host (`ip neigh add proxy ...`); after a migration or failover the
old primary must stop answering for them, or it keeps attracting the instance's
traffic. The current entries are read once (`ip neigh show proxy`), matched against
the instance's addresses by pure code, and only the matches are deleted.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ganeti_ext.environ.hooks import HookInstance
from ganeti_ext.errors import CommandError, GanetiExtError
from ganeti_ext.inet import eui64_address
from ganeti_ext.network.host import Host
from ganeti_ext.runner import Runner

log = logging.getLogger(__name__)

IP = "ip"
TIMEOUT = 0.3  # each `ip` call; a hook must be done in well under a second

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ProxyEntry:
    address: Address
    device: str


def instance_addresses(instance: HookInstance) -> set[Address]:
    """Every address the instance's NICs may have had proxied: IPv4 and EUI-64 IPv6."""
    found: set[Address] = set()
    for nic in instance.nics:
        if nic.ip is not None:
            found.add(nic.ip)
        subnet6 = nic.network.subnet6 if nic.network is not None else None
        if subnet6 is not None and subnet6.prefixlen == 64 and nic.mac:
            found.add(eui64_address(subnet6, nic.mac))
    return found


def parse_proxy_entries(output: str) -> list[ProxyEntry]:
    """`ip neigh show proxy` output -> entries ("2001:db8::5 dev br0 proxy")."""
    entries = []
    for line in output.splitlines():
        words = line.split()
        if "dev" not in words or words.index("dev") + 1 >= len(words):
            continue
        try:
            address = ipaddress.ip_address(words[0])
        except ValueError:
            continue
        entries.append(ProxyEntry(address, words[words.index("dev") + 1]))
    return entries


def stale_entries(entries: Iterable[ProxyEntry], addresses: set[Address]) -> list[ProxyEntry]:
    return [entry for entry in entries if entry.address in addresses]


def show_command(family: int) -> list[str]:
    return [IP, f"-{family}", "neigh", "show", "proxy"]


def delete_command(entry: ProxyEntry) -> list[str]:
    return [
        IP,
        f"-{entry.address.version}",
        "neigh",
        "del",
        "proxy",
        str(entry.address),
        "dev",
        entry.device,
    ]


def current_entries(runner: Runner, families: Sequence[int] = (4, 6)) -> list[ProxyEntry]:
    entries: list[ProxyEntry] = []
    for family in families:
        result = runner.run(show_command(family), timeout=TIMEOUT)
        entries.extend(parse_proxy_entries(result.stdout_text))
    return entries


def clean_up(instance: HookInstance, host: Host) -> list[ProxyEntry]:
    """Delete the proxy entries of `instance`'s addresses; returns those deleted.

    Under the host's networking lock, like every change the NIC scripts make (a NIC
    coming up at the same time must not see its entries vanish half-way). Failures are
    logged, never raised: a leftover entry is less harm than a hook that fails (and it
    is harmless when there is nothing to delete).
    """
    addresses = instance_addresses(instance)
    if not addresses:
        return []
    try:
        with host.locked():
            return _delete_stale(instance, host, addresses)
    except GanetiExtError as err:
        log.warning("%s: proxy neighbours left as they are: %s", instance.name, err)
        return []


def _delete_stale(instance: HookInstance, host: Host, addresses: set[Address]) -> list[ProxyEntry]:
    try:
        entries = current_entries(host.runner)
    except CommandError as err:
        log.warning("%s: cannot list proxy neighbours: %s", instance.name, err)
        return []
    deleted = []
    for entry in stale_entries(entries, addresses):
        try:
            host.runner.run(delete_command(entry), timeout=TIMEOUT)
        except CommandError as err:
            log.warning(
                "%s: cannot delete proxy neighbour %s: %s", instance.name, entry.address, err
            )
            continue
        log.info("%s: removed proxy neighbour %s on %s", instance.name, entry.address, entry.device)
        deleted.append(entry)
    return deleted
