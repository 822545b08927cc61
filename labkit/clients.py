"""Namespaces that play VMs on the lab network: a veth whose node end looks like a tap.

The node end is named tap<something> and sits in a node's namespace, so NIC scripts,
iptables rules (`-i tap+`, `--physdev-in tap+`) and nfdhcpd treat it exactly like the tap
of a KVM guest; the other end is eth0 inside the client namespace, where real clients
(udhcpc, dhclient, rdisc6, ping, nc) run. `down` removes every client namespace.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Sequence

from labkit import net, settings
from labkit.settings import Node
from labkit.sh import LabError, run

CLIENT_PREFIX = "gntc-"
_counter = itertools.count(1)


def client_namespaces() -> list[str]:
    try:
        return sorted(n for n in os.listdir("/run/netns") if n.startswith(CLIENT_PREFIX))
    except FileNotFoundError:
        return []


class Client:
    """One VM stand-in. Use as a context manager, or call create() and delete()."""

    def __init__(
        self,
        *,
        mac: str | None = None,
        node: Node = settings.MASTER,
        bridged: bool = True,
        tap: str | None = None,
        node_up: bool = True,
    ) -> None:
        number = next(_counter)
        self.netns = f"{CLIENT_PREFIX}{os.getpid() % 100000}-{number}"
        self.tap = tap or f"tapc{os.getpid() % 1000}x{number}"
        if len(self.tap) > 15:
            raise LabError(f"interface name too long: {self.tap}")
        self.mac = mac
        self.node = node
        self.bridged = bridged
        # False: leave the node end down for a NIC script to bring up, as Ganeti does.
        self.node_up = node_up

    def create(self) -> Client:
        run(["ip", "netns", "add", self.netns])
        run(
            [
                "ip",
                "link",
                "add",
                self.tap,
                "netns",
                self.node.netns,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.netns,
            ]
        )
        if self.mac:
            self.ip("link", "set", "eth0", "address", self.mac)
        self.ip("link", "set", "lo", "up")
        self.ip("link", "set", "eth0", "up")
        if self.bridged:
            self.node_ip("link", "set", self.tap, "master", settings.BRIDGE)
        if self.node_up:
            self.node_ip("link", "set", self.tap, "up")
        return self

    def ip(self, *argv: str) -> str:
        return run(["ip", "-n", self.netns, *argv]).stdout

    def node_ip(self, *argv: str) -> str:
        return run(["ip", "-n", self.node.netns, *argv]).stdout

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """argv inside the client namespace."""
        return run(
            ["ip", "netns", "exec", self.netns, *argv], check=check, timeout=timeout, input=input
        )

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    @property
    def eth_mac(self) -> str:
        return self.run(["cat", "/sys/class/net/eth0/address"]).stdout.strip()

    def delete(self) -> None:
        net.delete_namespace(self.netns)
        run(["ip", "-n", self.node.netns, "link", "del", self.tap], check=False)

    def __enter__(self) -> Client:
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()
