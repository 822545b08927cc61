"""`ip -batch` lines and sysctls wiring a tap (pure): bridged, routed, Open vSwitch."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ganeti_ext.network.plan import NicPlan

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def fixed_tap_mac(current: str) -> str:
    """The tap's MAC with the first octet set to fe, as Ganeti's kvm-ifup does: the
    bridge takes the lowest port MAC as its own, and fe:... never wins that."""
    return "fe" + current.strip().lower()[2:]


def bridged_lines(plan: NicPlan, bridge_mtu: int, tap_mac: str | None) -> list[str]:
    address = f" address {fixed_tap_mac(tap_mac)}" if tap_mac else ""
    return [f"link set dev {plan.tap}{address} mtu {bridge_mtu} master {plan.link} up"]


def ovs_commands(plan: NicPlan) -> list[list[str]]:
    """What Ganeti's own kvm-ifup does for openvswitch NICs (access port or trunk)."""
    commands = [
        ["ovs-vsctl", "--if-exists", "del-port", plan.tap],
        ["ip", "link", "set", "dev", plan.tap, "up"],
        ["ovs-vsctl", "add-port", str(plan.link), plan.tap],
    ]
    vlan = plan.vlan or ""
    access = vlan.split(":", 1)[0].lstrip(".")
    if access:
        commands.append(["ovs-vsctl", "set", "port", plan.tap, f"tag={access}"])
    trunks = [part for part in vlan.split(":")[1:] if part]
    if trunks:
        commands.append(["ovs-vsctl", "set", "port", plan.tap, f"trunks={','.join(trunks)}"])
    return commands


@dataclass(frozen=True)
class RoutedSetup:
    """What routed up adds beyond the tap itself (kept in the state for down)."""

    table: str
    routes: tuple[str, ...]  # host routes, address/len
    tap_proxies: tuple[str, ...]  # proxied on the tap, for the VM: its gateway(s)
    uplink_proxies: tuple[tuple[str, str], ...] = field(default=())  # (address, uplink)


def routed_setup(plan: NicPlan, uplinks: tuple[str, ...]) -> RoutedSetup:
    routes = [f"{plan.ipv4}/32"] if plan.ipv4 else []
    if plan.ipv6:
        routes.append(f"{plan.ipv6}/128")
    tap_proxies = [str(plan.gateway6)] if plan.gateway6 and plan.ipv6 else []
    addresses = [a for a in (plan.ipv4, plan.ipv6) if a is not None]
    return RoutedSetup(
        table=str(plan.link),
        routes=tuple(routes),
        tap_proxies=tuple(tap_proxies),
        uplink_proxies=tuple((str(a), uplink) for uplink in uplinks for a in addresses),
    )


def rule_line(action: str, tap: str, table: str) -> str:
    """The policy rule sending what the VM sends into the network's table (`add`/`del`).

    `ip rule` is per family and `ip -batch` takes no -6 per line, so the same line runs
    once in `ip -batch` and once in `ip -6 -batch` (see Host.ip_batch).
    """
    return f"rule {action} iif {tap} table {table}"


def rule_families(setup: RoutedSetup) -> tuple[int, ...]:
    return tuple(sorted({6 if ":" in route else 4 for route in setup.routes}))


def routed_tap_line(plan: NicPlan, tap_mac: str, mtu: int | None = None) -> str:
    """The routed tap up with the constant MAC: all a routed NIC gets without the
    `ip-less-routed` tag (upstream's behaviour; routing is then the site's business)."""
    return f"link set dev {plan.tap} address {tap_mac}{f' mtu {mtu}' if mtu else ''} up"


def routed_up_lines(
    plan: NicPlan, setup: RoutedSetup, tap_mac: str, mtu: int | None = None
) -> list[str]:
    """An ip-less-routed tap: up, no address of the host's own in the network (only
    its link-local), its host routes and proxy entries; the rules go separately
    (rule_line)."""
    lines = [routed_tap_line(plan, tap_mac, mtu), f"address flush dev {plan.tap} scope global"]
    lines += [
        f"route replace {r} dev {plan.tap} table {setup.table} proto static" for r in setup.routes
    ]
    lines += [f"neigh replace proxy {a} dev {plan.tap}" for a in setup.tap_proxies]
    lines += [f"neigh replace proxy {a} dev {dev}" for a, dev in setup.uplink_proxies]
    return lines


def routed_down_lines(tap: str, setup: RoutedSetup) -> list[str]:
    """Undo routed_up_lines; run with -force (what vanished with the tap is fine).
    The rules are removed by name, for both families (rule_line)."""
    lines = [f"route del {r} dev {tap} table {setup.table}" for r in setup.routes]
    lines += [f"neigh del proxy {a} dev {tap}" for a in setup.tap_proxies]
    lines += [f"neigh del proxy {a} dev {dev}" for a, dev in setup.uplink_proxies]
    return lines


def routed_sysctls(tap: str, uplinks: tuple[str, ...]) -> dict[str, str]:
    """/proc/sys settings routed mode needs (proxy ARP/NDP, forwarding on the tap).

    proxy_delay 0: the kernel otherwise answers a proxied ARP request or multicast
    neighbour solicitation after a random delay of up to 0.8 s, which a booting VM
    (or the upstream router) waits through for its first packet.
    accept_dad 0: the tap is point to point, so the host's link-local address there
    cannot clash; duplicate address detection would only keep the host from resolving
    the VM's IPv6 address (and forwarding to it) for the first second after up.
    """
    values = {
        f"net/ipv4/conf/{tap}/proxy_arp": "1",
        f"net/ipv4/conf/{tap}/forwarding": "1",
        f"net/ipv4/neigh/{tap}/proxy_delay": "0",
        f"net/ipv6/conf/{tap}/proxy_ndp": "1",
        f"net/ipv6/conf/{tap}/forwarding": "1",
        f"net/ipv6/conf/{tap}/accept_dad": "0",
        f"net/ipv6/neigh/{tap}/proxy_delay": "0",
    }
    for uplink in uplinks:
        values[f"net/ipv6/conf/{uplink}/proxy_ndp"] = "1"
        values[f"net/ipv4/neigh/{uplink}/proxy_delay"] = "0"
        values[f"net/ipv6/neigh/{uplink}/proxy_delay"] = "0"
    return values


def parse_uplinks(route_output: str, exclude_prefix: str = "tap") -> tuple[str, ...]:
    """Devices of the default routes in `ip -o route show table X` output."""
    found: list[str] = []
    for line in route_output.splitlines():
        words = line.split()
        if not words or words[0] != "default" or "dev" not in words:
            continue
        dev = words[words.index("dev") + 1] if words.index("dev") + 1 < len(words) else ""
        if dev and not dev.startswith(exclude_prefix) and dev not in found:
            found.append(dev)
    return tuple(found)
