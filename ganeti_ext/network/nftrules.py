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


def _skeleton() -> list[str]:
    return [
        f"add table netdev {TABLE}",
        f"add table bridge {TABLE}",
        f"add map bridge {TABLE} {TO_VM_MAP} {{ type ifname : verdict; }}",
        f"add chain bridge {TABLE} dispatch"
        f" {{ type filter hook forward priority {PRIORITY}; policy accept; }}",
        # Re-made in every transaction, so it exists exactly once without reading first.
        f"flush chain bridge {TABLE} dispatch",
        f"add rule bridge {TABLE} dispatch oifname vmap @{TO_VM_MAP}",
    ]


def _ingress_chain_decl(tap: str) -> str:
    return (
        f"add chain netdev {TABLE} {ingress_chain(tap)}"
        f' {{ type filter hook ingress device "{tap}" priority {PRIORITY}; policy accept; }}'
    )


def up_batch(plan: NicPlan, mac_mask: str) -> str:
    """One atomic nft transaction that (re)makes the tap's chains (idempotent)."""
    tap = plan.tap
    lines = _skeleton()
    lines.append(_ingress_chain_decl(tap))
    lines.append(f"flush chain netdev {TABLE} {ingress_chain(tap)}")
    lines += [
        f"add rule netdev {TABLE} {ingress_chain(tap)} {rule}" for rule in antispoof_rules(plan)
    ]
    # The map element and the egress chain: add-then-delete is "delete if present" in a
    # single transaction, so a NIC that left a private-filtered network loses them.
    element = f'{TO_VM_MAP} {{ "{tap}" : jump {egress_chain(tap)} }}'
    lines.append(f"add chain bridge {TABLE} {egress_chain(tap)}")
    lines.append(f"add element bridge {TABLE} {element}")
    egress = private_filter_rules(plan, mac_mask)
    if egress:
        lines.append(f"flush chain bridge {TABLE} {egress_chain(tap)}")
        lines += [f"add rule bridge {TABLE} {egress_chain(tap)} {rule}" for rule in egress]
    else:
        lines.append(f"delete element bridge {TABLE} {element}")
        lines.append(f"delete chain bridge {TABLE} {egress_chain(tap)}")
    return "\n".join(lines) + "\n"


def down_batch(tap: str, *, with_ingress: bool = True) -> str:
    """One atomic nft transaction removing the tap's chains, present or not.

    `with_ingress=False` leaves out the netdev chain: kernels before 6.x release it
    themselves when the tap goes away and refuse to re-declare it for a missing device.
    """
    element = f'{TO_VM_MAP} {{ "{tap}" : jump {egress_chain(tap)} }}'
    lines = _skeleton()
    if with_ingress:
        lines.append(_ingress_chain_decl(tap))
        lines.append(f"delete chain netdev {TABLE} {ingress_chain(tap)}")
    lines += [
        f"add chain bridge {TABLE} {egress_chain(tap)}",
        f"add element bridge {TABLE} {element}",
        f"delete element bridge {TABLE} {element}",
        f"delete chain bridge {TABLE} {egress_chain(tap)}",
    ]
    return "\n".join(lines) + "\n"
