"""snf-network through a KVM instance's life with Ganeti: add, reboot, migrate, remove,
and NICs hotplugged into and out of the running instance.

Ganeti runs the installed NIC script (/etc/ganeti/kvm-vif-bridge) for each tap it
creates and never calls a down script (3.0); the snf-network post-hooks take down what
vanished. After every step, each node's rules (nft chains, profile set elements), nfdhcpd
bindings and snf-network state must name exactly the taps that exist on that node, and
the instance's tap must carry all of them on the node that runs it.

Hotplug (`gnt-instance modify --net`, by default on 3.1, with --hotplug on 3.0): Ganeti
runs the NIC script for a tap it adds to a running qemu and, for one it removes, only
closes it; the modify post-hook then takes the vanished tap's rules down and re-applies
the others, whose NIC index may have moved.
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
        # One file per NIC, holding its tap's name without a newline.
        ["sh", "-c", f'for f in /run/ganeti/kvm-hypervisor/nic/{name}/*; do cat "$f"; echo; done'],
        node=node,
        check=False,
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


def add_tagged_kvm_instance(lab, name: str, *tags: str) -> None:
    """A KVM instance on an archipelago disk, on node 1, with `tags` (one --tags: a second
    would replace the first)."""
    add_instance(lab, name, hypervisor="kvm", template="ext", extra=("--tags", ",".join(tags)))


def test_add_reboot_migrate_remove_keep_each_node_exact(lab2, instance_name):
    lab = lab2
    name = instance_name()
    add_tagged_kvm_instance(lab, name, "synnefo:network:0:protected")
    assert_nodes_match(lab, name, running_on=1)

    lab.gnt("gnt-instance", "reboot", "--type=hard", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=1)

    lab.gnt("gnt-instance", "migrate", "-f", name)
    assert_nodes_match(lab, name, running_on=2)

    lab.gnt("gnt-instance", "reboot", "--type=hard", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=2)

    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=None)


def profile_taps(lab, node: int, profile: str) -> set[str]:
    """The Ganeti taps in a firewall profile's set (the inet one; the bridge set follows it)."""
    out = lab.run(["nft", "list", "set", "inet", "snf_network", f"fw_{profile}"], node=node).stdout
    return {word for word in re.findall(r'"([^"]+)"', out) if TAP.match(word)}


def test_hotplugged_nics_get_their_rules_and_removed_ones_lose_them(lab2, instance_name):
    lab = lab2
    name = instance_name()
    add_tagged_kvm_instance(lab, name, "synnefo:network:0:protected", "synnefo:network:1:limited")
    (first,) = taps_of(lab, name, 1)
    assert first in profile_taps(lab, 1, "protected")

    hotplug = lab.hotplug_flags()
    lab.gnt("gnt-instance", "modify", *hotplug, "--net", "add:network=net1,ip=pool", name)
    assert_nodes_match(lab, name, running_on=1)
    (second,) = taps_of(lab, name, 1) - {first}
    assert second in profile_taps(lab, 1, "limited")  # NIC 1's profile
    mac = lab.gnt("gnt-instance", "list", "--no-headers", "-o", "nic.mac/1", name).stdout.strip()
    lab.wait_console(name, "cat /sys/class/net/*/address", mac)  # the guest has it

    # NIC 0 goes: the other one becomes NIC 0, and the tag for NIC 0 now names it.
    lab.gnt("gnt-instance", "modify", *hotplug, "--net", "0:remove", name)
    assert_nodes_match(lab, name, running_on=1)
    assert taps_of(lab, name, 1) == {second}
    assert second in profile_taps(lab, 1, "protected")
    assert second not in profile_taps(lab, 1, "limited")

    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert_nodes_match(lab, name, running_on=None)
