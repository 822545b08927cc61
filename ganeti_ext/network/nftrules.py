"""nft batches for per-tap layer-2 filtering (pure).

Why nft and not ebtables or iptables for this layer:
- ebtables exists here only as ebtables-nft, a translation layer over nf_tables with
  no atomic multi-rule batches and a per-call rule-cache fetch; `nft -f -` applies a
  whole tap's rules in one atomic transaction.
- The anti-spoofing chain of a tap is a `netdev` base chain hooked on the tap's own
  ingress: it sees every frame the VM sends (ARP, IPv4, IPv6, anything else), before
  bridging or routing, so the same rules protect bridged and routed NICs, and they cost
  nothing for other taps (no dispatch list that grows with the NIC count).
- Frames towards a tap on a private-filtered network are checked in a `bridge` table
  through a verdict map keyed by the out-port: one lookup, however many NICs.

Everything lives in tables named `snf_network`, one chain per tap, so down removes
exactly that tap's chain and map element and nothing of anybody else's.
"""

from __future__ import annotations

import ipaddress

from ganeti_ext.network.plan import NicPlan

TABLE = "snf_network"
PRIORITY = -150  # before anything in filter priority (0), after nothing that matters
TO_VM_MAP = "to_vm"


def ingress_chain(tap: str) -> str:
    return f"from_{tap}"


def egress_chain(tap: str) -> str:
    return f"to_{tap}"


def _hex128(address: ipaddress.IPv6Address) -> str:
    return f"0x{int(address):032x}"


def _mac_masked(mac_prefix: str, mask: str) -> str:
    """The network's MAC prefix padded to 6 bytes and masked (aa:00:01 -> aa:00:00:...)."""
    prefix = [int(part, 16) for part in mac_prefix.split(":")] + [0, 0, 0]
    masks = [int(part, 16) for part in mask.split(":")]
    return ":".join(f"{p & m:02x}" for p, m in zip(prefix, masks, strict=True))


def antispoof_rules(plan: NicPlan) -> list[str]:
    """Rules of the tap's ingress chain: what the VM may send, in order."""
    rules: list[str] = []
    if plan.mac:
        rules.append(f"ether saddr != {plan.mac} drop")
    # Only ARP, IPv4 and IPv6: no VLAN tags to slip past the checks below, no STP/LLDP.
    rules.append("meta protocol != { arp, ip, ip6 } drop")
    if plan.mac:
        rules.append(f"arp saddr ether != {plan.mac} drop")
    if plan.restrict_ipv4:
        # 0.0.0.0 is what a DHCP client and ARP duplicate-address probes use.
        own = f"{{ {plan.ipv4}, 0.0.0.0 }}" if plan.ipv4 else "0.0.0.0"
        rules.append(f"arp saddr ip != {own} drop")
    # No DHCP server replies from a VM, whatever its address.
    rules.append("meta protocol ip udp sport 67 drop")
    if plan.restrict_ipv4:
        rules.append("ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept")
        if plan.ipv4:
            rules.append(f"ip saddr != {plan.ipv4} drop")
        else:
            rules.append("meta protocol ip drop")
    # No router advertisements, redirects or DHCPv6 server replies from a VM.
    rules.append("icmpv6 type { nd-router-advert, nd-redirect } drop")
    rules.append("meta protocol ip6 udp sport 547 drop")
    if plan.restrict_ipv6:
        allowed = ["::", "fe80::/64"]
        if plan.ipv6:
            allowed.append(str(plan.ipv6))
        rules.append(f"ip6 saddr != {{ {', '.join(allowed)} }} drop")
        # A neighbour advertisement may only announce the VM's own addresses
        # (@th,64,... is the NA's target address).
        na = "icmpv6 type nd-neighbor-advert @th,64,64 != 0xfe80000000000000"
        if plan.ipv6:
            na += f" @th,64,128 != {_hex128(plan.ipv6)}"
        rules.append(na + " drop")
    return rules


def private_filter_rules(plan: NicPlan, mac_mask: str) -> list[str]:
    """Rules of the tap's egress chain on private-filtered networks: frames reach the
    VM only from MACs sharing its network's prefix under the mask."""
    if not (plan.private_filtered and plan.mac_prefix):
        return []
    masked = _mac_masked(plan.mac_prefix, mac_mask)
    return [f"ether saddr & {mac_mask} != {masked} drop"]


Chains = frozenset[tuple[str, str]]  # (family, chain) of our tables, as listed


def parse_chains(output: str) -> Chains:
    """`nft list chains` output -> the (family, chain) pairs of the snf_network tables.

    Listing chains is cheap whatever the rule count; anything that needs the rules
    (`flush chain`, `add rule` to an existing chain) makes nft fetch every rule of every
    table first, which grows with the NIC count. Knowing what exists lets the common
    case (a fresh tap) skip all of that.
    """
    found: set[tuple[str, str]] = set()
    family = None
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] == "table":
            family = words[1] if words[2] == TABLE else None
        elif family and len(words) >= 2 and words[0] == "chain":
            found.add((family, words[1]))
    return frozenset(found)


def _skeleton(existing: Chains | None) -> list[str]:
    lines = [f"add table netdev {TABLE}", f"add table bridge {TABLE}"]
    if existing is not None and ("bridge", "dispatch") in existing:
        return lines
    return [
        *lines,
        f"add map bridge {TABLE} {TO_VM_MAP} {{ type ifname : verdict; }}",
        f"add chain bridge {TABLE} dispatch"
        f" {{ type filter hook forward priority {PRIORITY}; policy accept; }}",
        # Re-made whenever it may be missing, so it exists exactly once.
        f"flush chain bridge {TABLE} dispatch",
        f"add rule bridge {TABLE} dispatch oifname vmap @{TO_VM_MAP}",
    ]


def _ingress_hook(tap: str) -> str:
    return f'type filter hook ingress device "{tap}" priority {PRIORITY}; policy accept;'


def _ingress_chain_decl(tap: str) -> str:
    return f"add chain netdev {TABLE} {ingress_chain(tap)} {{ {_ingress_hook(tap)} }}"


def _chain_block(family: str, chain: str, head: str, rules: list[str]) -> str:
    """A chain and its rules in nft's block syntax: creating it this way needs no rule
    cache (only for a chain that does not exist yet: it would append)."""
    body = "".join(f"\n    {rule}" for rule in [head, *rules] if rule)
    return f"table {family} {TABLE} {{\n  chain {chain} {{{body}\n  }}\n}}"


def up_batch(plan: NicPlan, mac_mask: str, existing: Chains | None = None) -> str:
    """One atomic nft transaction that (re)makes the tap's chains (idempotent).

    `existing` is what parse_chains found; None means unknown (everything is re-made
    the slow, always-safe way).
    """
    tap = plan.tap
    ingress, egress_name = ingress_chain(tap), egress_chain(tap)
    lines = _skeleton(existing)
    rules = antispoof_rules(plan)
    if existing is not None and ("netdev", ingress) not in existing:
        lines.append(_chain_block("netdev", ingress, _ingress_hook(tap), rules))
    else:
        lines.append(_ingress_chain_decl(tap))
        lines.append(f"flush chain netdev {TABLE} {ingress}")
        lines += [f"add rule netdev {TABLE} {ingress} {rule}" for rule in rules]
    # The map element and the egress chain exist only on private-filtered networks; a
    # NIC that left one loses them.
    element = f'{TO_VM_MAP} {{ "{tap}" : jump {egress_name} }}'
    egress = private_filter_rules(plan, mac_mask)
    had_egress = existing is None or ("bridge", egress_name) in existing
    if egress:
        if had_egress:
            lines.append(f"add chain bridge {TABLE} {egress_name}")
            lines.append(f"flush chain bridge {TABLE} {egress_name}")
            lines += [f"add rule bridge {TABLE} {egress_name} {rule}" for rule in egress]
        else:
            lines.append(_chain_block("bridge", egress_name, "", egress))
        lines.append(f"add element bridge {TABLE} {element}")
    elif had_egress:
        lines += _drop_egress(tap)
    return "\n".join(lines) + "\n"


def _drop_egress(tap: str) -> list[str]:
    """Delete the egress chain and its map element, present or not (add-then-delete is
    "delete if present" in one transaction)."""
    element = f'{TO_VM_MAP} {{ "{tap}" : jump {egress_chain(tap)} }}'
    return [
        f"add chain bridge {TABLE} {egress_chain(tap)}",
        f"add element bridge {TABLE} {element}",
        f"delete element bridge {TABLE} {element}",
        f"delete chain bridge {TABLE} {egress_chain(tap)}",
    ]


def down_batch(tap: str, *, with_ingress: bool = True, existing: Chains | None = None) -> str:
    """One atomic nft transaction removing the tap's chains (deleting a chain deletes
    its rules). With `existing`, only what is there; without, "present or not".

    `with_ingress=False` leaves out the netdev chain: kernels before 6.x release it
    themselves when the tap goes away and refuse to re-declare it for a missing device.
    """
    lines = [f"add table netdev {TABLE}", f"add table bridge {TABLE}"]
    if existing is None:
        lines = _skeleton(None)
        if with_ingress:
            lines.append(_ingress_chain_decl(tap))
            lines.append(f"delete chain netdev {TABLE} {ingress_chain(tap)}")
        lines += _drop_egress(tap)
        return "\n".join(lines) + "\n"
    if ("netdev", ingress_chain(tap)) in existing:
        lines.append(f"delete chain netdev {TABLE} {ingress_chain(tap)}")
    if ("bridge", egress_chain(tap)) in existing:
        lines.append(f'delete element bridge {TABLE} {TO_VM_MAP} {{ "{tap}" }}')
        lines.append(f"delete chain bridge {TABLE} {egress_chain(tap)}")
    return "\n".join(lines) + "\n"
