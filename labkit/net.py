"""The lab's network: one namespace per node, a bridge in each, joined by a veth."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

from labkit import settings
from labkit.settings import Node
from labkit.sh import run

NETNS_ETC = Path("/etc/netns")


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def lab_namespaces() -> list[str]:
    """The node namespaces and the client namespaces (VM stand-ins) that exist."""
    from labkit.clients import client_namespaces

    nodes = [node.netns for node in settings.NODES.values() if netns_exists(node.netns)]
    return nodes + client_namespaces()


def hosts_file(node: Node) -> str:
    """/etc/hosts as the node sees it: the host's own name is an alias of this node.

    gethostname() inside a netns is still the host's, and Ganeti resolves it to find
    out which node it runs on, so each namespace maps that name to its own node.
    """
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines.append(f"{settings.CLUSTER_IP} {settings.CLUSTER_NAME} cluster")
    for other in settings.NODES.values():
        aliases = f" {socket.gethostname()}" if other == node else ""
        lines.append(f"{other.ip} {other.name} {other.short}{aliases}")
    return "\n".join(lines) + "\n"


def _ns(node: Node, *argv: str) -> None:
    run(["ip", "-n", node.netns, *argv])


def create_node_network(node: Node) -> None:
    """Namespace, loopback, bridge with the node's addresses, name resolution."""
    etc = NETNS_ETC / node.netns
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "hosts").write_text(hosts_file(node))
    if not netns_exists(node.netns):
        run(["ip", "netns", "add", node.netns])
    _ns(node, "link", "set", "lo", "up")
    links = run(["ip", "-n", node.netns, "-o", "link", "show"]).stdout
    if f": {settings.BRIDGE}:" not in links:
        # forward_delay 0: a guest's tap forwards at once instead of after 15 s of STP.
        _ns(
            node,
            "link",
            "add",
            settings.BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "stp_state",
            "0",
        )
    addrs = run(["ip", "-n", node.netns, "-o", "addr", "show", "dev", settings.BRIDGE]).stdout
    if f" {node.ip}/" not in addrs:
        _ns(node, "addr", "add", f"{node.ip}/{settings.PREFIX_LEN}", "dev", settings.BRIDGE)
    if f" {node.ip6}/" not in addrs:
        _ns(node, "addr", "add", f"{node.ip6}/64", "dev", settings.BRIDGE, "nodad")
    _ns(node, "link", "set", settings.BRIDGE, "up")
    # Bridged guest traffic must reach the inet hooks for the NIC scripts' firewall.
    for family in ("iptables", "ip6tables"):
        run(
            [
                "ip",
                "netns",
                "exec",
                node.netns,
                "sysctl",
                "-q",
                "-w",
                f"net.bridge.bridge-nf-call-{family}=1",
            ],
            check=False,
        )


def link_nodes(first: Node, second: Node) -> None:
    """A veth between the two nodes' bridges: one L2 segment, like a switch."""
    left, right = f"veth-{second.short}", f"veth-{first.short}"
    links = run(["ip", "-n", first.netns, "-o", "link", "show"]).stdout
    if f": {left}@" in links:
        return
    run(
        [
            "ip",
            "link",
            "add",
            left,
            "netns",
            first.netns,
            "type",
            "veth",
            "peer",
            "name",
            right,
            "netns",
            second.netns,
        ]
    )
    _ns(first, "link", "set", left, "master", settings.BRIDGE, "up")
    _ns(second, "link", "set", right, "master", settings.BRIDGE, "up")


def delete_namespace(netns: str) -> None:
    """End the namespace's processes by PID, then delete it."""
    pids = run(["ip", "netns", "pids", netns], check=False).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    if netns_exists(netns):
        run(["ip", "netns", "delete", netns], check=False)


def delete_namespaces() -> None:
    for netns in lab_namespaces():
        run(["ip", "netns", "delete", netns], check=False)
