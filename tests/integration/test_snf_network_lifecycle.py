"""snf-network through a KVM instance's life with Ganeti: add, reboot, migrate, remove.

Ganeti runs the installed NIC script (/etc/ganeti/kvm-vif-bridge) for each tap it
creates and never calls a down script (3.0); the snf-network post-hooks take down what
vanished. After every step, each node's rules (nft chains, profile set elements), nfdhcpd
bindings and snf-network state must name exactly the taps that exist on that node, and
the instance's tap must carry all of them on the node that runs it.
"""

from __future__ import annotations

import re

from instances import add_instance

KINDS = ("state", "bindings", "profile-inet", "profile-bridge", "nft")
TAP = re.compile(r"^tap\d+$")  # Ganeti's KVM taps (the tests' veths are tapc..., tapb...)

VIEW = r"""
echo '[links]'; ip -o link show | sed -n 's/^[0-9]*: \([^:@]*\).*/\1/p'
echo '[state]'; ls /var/lib/snf-network | sed -n 's/\.json$//p'
echo '[bindings]'; ls /var/lib/nfdhcpd
for family in inet bridge; do
  echo "[profile-$family]"
  for set in fw_protected fw_limited; do nft list set $family snf_network $set; done \
    | grep -o '"[^"]*"' | tr -d '"'
done
echo '[nft]'; nft list chains netdev | sed -n 's/^\s*chain from_\(\S*\) {/\1/p'
true
"""


def node_view(lab, node: int) -> dict[str, set[str]]:
    """What a node has, by kind, keeping only names of Ganeti taps."""
    view: dict[str, set[str]] = {}
    kind = ""
    for line in lab.run(["sh", "-c", VIEW], node=node).stdout.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1]
            view[kind] = set()
        elif TAP.match(line):
            view[kind].add(line)
    return view


def taps_of(lab, name: str, node: int) -> set[str]:
    out = lab.run(
        ["sh", "-c", f"cat /run/ganeti/kvm-hypervisor/nic/{name}/* 2>/dev/null; true"], node=node
    ).stdout
    return {word for word in out.split() if TAP.match(word)}


def assert_nodes_match(lab, name: str, running_on: int | None) -> None:
    for node in (1, 2):
        view = node_view(lab, node)
        live = view["links"]
        for kind in KINDS:
            leftovers = view[kind] - live
            assert not leftovers, f"node {node}: {kind} for vanished taps {sorted(leftovers)}"
        mine = taps_of(lab, name, node) if node == running_on else set()
        if node == running_on:
            assert mine, f"node {node}: no tap recorded for {name}"
        for kind in KINDS:
            missing = mine - view[kind]
            assert not missing, f"node {node}: {kind} missing for {name}'s {sorted(missing)}"


def test_add_reboot_migrate_remove_keep_each_node_exact(lab2, instance_name):
    lab = lab2
    name = instance_name()
    add_instance(
        lab,
        name,
        hypervisor="kvm",
        template="ext",
        extra=("--tags", "synnefo:network:0:protected"),
    )
    assert_nodes_match(lab, name, running_on=1)

    lab.gnt("gnt-instance", "reboot", "--type=hard", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=1)

    lab.gnt("gnt-instance", "migrate", "-f", name)
    assert_nodes_match(lab, name, running_on=2)

    lab.gnt("gnt-instance", "reboot", "--type=hard", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=2)

    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=None)
