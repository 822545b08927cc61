"""nft batches for everything snf-network puts in the packet path (pure).

All of it lives in tables named `snf_network`:
- `netdev`: one ingress base chain per tap, `from_<tap>`: the anti-spoofing rules. It
  sees every frame the VM sends (ARP, IPv4, IPv6, anything else) before bridging or
  routing, so the same rules protect bridged and routed NICs at no cost to other taps.
- `inet`: the firewall profiles, one shared chain per profile (`protected`, `limited`),
  and a `forward` chain choosing one by set membership: a routed tap is the packet's
  out-interface, so `oifname @fw_<profile>`. Bridged traffic reaches this hook only
  through br_netfilter, with the bridge as out-interface: the port is known only to
  the bridge table, which therefore marks the packet with the profile's bit.
- `inet` also masquerades NICs on `masq` networks: a `postrouting` NAT chain and two
  sets, the NIC's IPv4 (`masq_src`) and its IPv4 with its own interface
  (`masq_home`: traffic back out of that interface stays unchanged).
- `bridge`: a `forward` chain that clears our mark bits, marks frames bound for a
  firewalled port, and sends frames bound for a private-filtered port to that port's
  chain `to_<tap>` through the verdict map `to_vm`.

Why nft, and why this shape:
- ebtables exists here only as ebtables-nft, a translation layer without atomic
  multi-rule batches; `nft -f -` applies a whole NIC in one transaction. Firewall
  profiles left iptables: one physdev rule per NIC in a shared chain cost every
  forwarded packet a walk of that chain, and every NIC up/down a fetch of it.
- A NIC's profile is one set element per table: one hash lookup per packet and an O(1)
  change, however many NICs the node has. conntrack works in the inet family (nft's
  bridge family has none on kernels without nf_conntrack_bridge).
- A fresh tap only *adds* (`create chain`, rules without anonymous sets, set elements):
  nft 1.0.6 then fetches no other tap's rules or sets, and no deletion makes the kernel
  wait for a grace period. `create chain` fails if the tap's chain exists, so a tap
  that was not fresh after all falls back to the full, idempotent batch, which also
  (re)makes the tables' skeleton.
"""

from __future__ import annotations

import ipaddress

from ganeti_ext.network.plan import NicPlan

TABLE = "snf_network"
RARP = "0x8035"  # ether type; nft has no name for it
L2_PRIORITY = -150  # before bridge/filter priority 0, where br_netfilter hands over to inet
FW_PRIORITY = 0
TO_VM_MAP = "to_vm"
PROFILES = ("protected", "limited")  # profiles with rules; "unprotected" has none
LIMITED_TCP_PORTS = (22, 3389)
_FAMILIES = ("bridge", "inet")  # the tables holding profile sets


def ingress_chain(tap: str) -> str:
    return f"from_{tap}"


def egress_chain(tap: str) -> str:
    return f"to_{tap}"


def profile_set(profile: str) -> str:
    return f"fw_{profile}"


Masq = tuple[str, str]  # (the NIC's IPv4, its own interface): the masq set elements


def masq_of(plan: NicPlan) -> Masq | None:
    """What a NIC on a masq network adds: its address, and the interface its traffic
    comes back out of unchanged (the bridge; the tap itself when routed)."""
    if not plan.masq or plan.ipv4 is None:
        return None
    home = plan.tap if plan.mode == "routed" else str(plan.link)
    return (str(plan.ipv4), home)


def mark_bits(mask: int) -> dict[str, int]:
    """The mark value of each profile: the mask's lowest set bit, then the next one."""
    bits = [1 << n for n in range(32) if mask >> n & 1]
    return dict(zip(PROFILES, bits, strict=False))


def _hex128(address: ipaddress.IPv6Address) -> str:
    return f"0x{int(address):032x}"


def _mac_masked(mac_prefix: str, mask: str) -> str:
    """The network's MAC prefix padded to 6 bytes and masked (aa:00:01 -> aa:00:00:...)."""
    prefix = [int(part, 16) for part in mac_prefix.split(":")] + [0, 0, 0]
    masks = [int(part, 16) for part in mask.split(":")]
    return ":".join(f"{p & m:02x}" for p, m in zip(prefix, masks, strict=True))


def _none_of(key: str, values: list[str]) -> str:
    """`key != a key != b ...`: true when the key is none of the values. Written without
    an anonymous set so a tap's chain adds no set nft must fetch for every later NIC."""
    return " ".join(f"{key} != {value}" for value in values)


def antispoof_rules(plan: NicPlan) -> list[str]:
    """Rules of the tap's ingress chain: what the VM may send, in order."""
    rules: list[str] = []
    if plan.mac:
        rules.append(f"ether saddr != {plan.mac} drop")
        # RARP: after a live migration qemu announces the VM's MAC with broadcast RARP
        # frames so the bridges learn its new port at once; dropped, a quiet guest
        # stays unreachable until it sends something itself. Its own MAC only (above).
        rules.append(f"meta protocol {RARP} ether daddr ff:ff:ff:ff:ff:ff accept")
    # Only ARP, IPv4 and IPv6: no VLAN tags to slip past the checks below, no STP/LLDP.
    rules.append(_none_of("meta protocol", ["arp", "ip", "ip6"]) + " drop")
    if plan.mac:
        rules.append(f"arp saddr ether != {plan.mac} drop")
    if plan.restrict_ipv4:
        # 0.0.0.0 is what a DHCP client and ARP duplicate-address probes use.
        own = [str(plan.ipv4), "0.0.0.0"] if plan.ipv4 else ["0.0.0.0"]
        rules.append(_none_of("arp saddr ip", own) + " drop")
    # No DHCP server replies from a VM, whatever its address.
    rules.append("meta protocol ip udp sport 67 drop")
    if plan.restrict_ipv4:
        rules.append("ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept")
        if plan.ipv4:
            rules.append(f"ip saddr != {plan.ipv4} drop")
        else:
            rules.append("meta protocol ip drop")
    # No router advertisements, redirects or DHCPv6 server replies from a VM.
    rules.append("icmpv6 type nd-router-advert drop")
    rules.append("icmpv6 type nd-redirect drop")
    rules.append("meta protocol ip6 udp sport 547 drop")
    if plan.restrict_ipv6:
        allowed = ["::", "fe80::/64"]
        if plan.ipv6:
            allowed.append(str(plan.ipv6))
        rules.append(_none_of("ip6 saddr", allowed) + " drop")
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


def profile_rules(profile: str) -> list[str]:
    """A profile chain's rules for traffic towards the VM, in order.

    protected: replies to what the VM started (TCP, DNS and every other conntrack'ed
    flow) and ICMP/ICMPv6 (echo, errors and IPv6 neighbour discovery, which upstream
    dropped); limited: that plus TCP 22 and 3389. A profile only takes traffic away: what
    it accepts still passes the host's other forward rules.
    """
    rules = [
        "ct state established,related accept",
        "meta l4proto { icmp, ipv6-icmp } accept",
    ]
    if profile == "limited":
        ports = ", ".join(str(port) for port in LIMITED_TCP_PORTS)
        rules.append(f"tcp dport {{ {ports} }} accept")
    return [*rules, "drop"]


def _remade_chain(family: str, chain: str, declaration: str, rules: list[str]) -> list[str]:
    head = f"add chain {family} {TABLE} {chain}" + (f" {{ {declaration} }}" if declaration else "")
    return [
        head,
        f"flush chain {family} {TABLE} {chain}",
        *(f"add rule {family} {TABLE} {chain} {rule}" for rule in rules),
    ]


def skeleton(mark_mask: int) -> list[str]:
    """The tables, sets and shared chains, (re)made exactly (idempotent; atomic within
    the batch it starts). Per-tap chains and set elements are left as they are."""
    bits = mark_bits(mark_mask)
    ifname_set = "{ type ifname; }"
    lines = [f"add table netdev {TABLE}", f"add table bridge {TABLE}", f"add table inet {TABLE}"]
    for family in _FAMILIES:
        lines += [f"add set {family} {TABLE} {profile_set(p)} {ifname_set}" for p in PROFILES]
    lines.append(f"add map bridge {TABLE} {TO_VM_MAP} {{ type ifname : verdict; }}")
    keep = 0xFFFFFFFF & ~mark_mask
    lines += _remade_chain(
        "bridge",
        "forward",
        f"type filter hook forward priority {L2_PRIORITY}; policy accept;",
        [
            f"meta mark set meta mark & 0x{keep:08x}",
            *(
                f"oifname @{profile_set(p)} meta mark set meta mark | 0x{bits[p]:08x}"
                for p in PROFILES
            ),
            f"oifname vmap @{TO_VM_MAP}",
        ],
    )
    for profile in PROFILES:
        lines += _remade_chain("inet", profile, "", profile_rules(profile))
    lines += [
        f"add set inet {TABLE} masq_src {{ type ipv4_addr; }}",
        f"add set inet {TABLE} masq_home {{ type ipv4_addr . ifname; }}",
    ]
    lines += _remade_chain(
        "inet",
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
        ["ip saddr @masq_src ip saddr . oifname != @masq_home masquerade"],
    )
    by_mark = ", ".join(f"0x{bits[p]:08x} : jump {p}" for p in PROFILES)
    lines += _remade_chain(
        "inet",
        "forward",
        f"type filter hook forward priority {FW_PRIORITY}; policy accept;",
        [
            *(f"oifname @{profile_set(p)} jump {p}" for p in PROFILES),
            f"meta mark & 0x{mark_mask:08x} vmap {{ {by_mark} }}",
        ],
    )
    return lines


def _ingress_hook(tap: str) -> str:
    return f'type filter hook ingress device "{tap}" priority {L2_PRIORITY}; policy accept;'


def _element(family: str, name: str, tap: str) -> str:
    return f'element {family} {TABLE} {name} {{ "{tap}" }}'


def _masq_elements(masq: Masq) -> list[str]:
    address, home = masq
    return [
        f"element inet {TABLE} masq_src {{ {address} }}",
        f'element inet {TABLE} masq_home {{ {address} . "{home}" }}',
    ]


def _delete_if_present(element: str) -> list[str]:
    """Add-then-delete: within one transaction, "delete if present" (nft 1.0.6 has no
    `destroy`). An element with data must be named with the data it would have."""
    return [f"add {element}", f"delete {element}"]


def _leave_masq(masq: Masq | None) -> list[str]:
    if masq is None:
        return []
    return [line for element in _masq_elements(masq) for line in _delete_if_present(element)]


def _join_masq(plan: NicPlan) -> list[str]:
    masq = masq_of(plan)
    return [] if masq is None else [f"add {element}" for element in _masq_elements(masq)]


def _to_vm_element(tap: str) -> str:
    return f'element bridge {TABLE} {TO_VM_MAP} {{ "{tap}" : jump {egress_chain(tap)} }}'


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def fresh_up_batch(plan: NicPlan, mac_mask: str) -> str:
    """The common case, a tap this host has no rules for: adds only. Fails (EEXIST,
    ENOENT) when the tap's chain exists or the skeleton does not; then use up_batch."""
    tap = plan.tap
    lines = _join_profile(plan) + _join_masq(plan)
    lines.append(f"create chain netdev {TABLE} {ingress_chain(tap)} {{ {_ingress_hook(tap)} }}")
    lines += [
        f"add rule netdev {TABLE} {ingress_chain(tap)} {rule}" for rule in antispoof_rules(plan)
    ]
    egress = private_filter_rules(plan, mac_mask)
    if egress:
        lines.append(f"create chain bridge {TABLE} {egress_chain(tap)}")
        lines += [f"add rule bridge {TABLE} {egress_chain(tap)} {rule}" for rule in egress]
        lines.append(f"add {_to_vm_element(tap)}")
    return _join(lines)


def _join_profile(plan: NicPlan) -> list[str]:
    if plan.profile not in PROFILES:
        return []
    name = profile_set(plan.profile)
    return [f"add {_element(family, name, plan.tap)}" for family in _FAMILIES]


def _leave_profiles(tap: str) -> list[str]:
    """Take the tap out of every profile set, member or not."""
    lines = []
    for family in _FAMILIES:
        for profile in PROFILES:
            lines += _delete_if_present(_element(family, profile_set(profile), tap))
    return lines


def _drop_egress(tap: str) -> list[str]:
    """Delete the egress chain and its map element, present or not."""
    # The element jumps to the chain: the chain is added before it and deleted after.
    chain = f"chain bridge {TABLE} {egress_chain(tap)}"
    return [f"add {chain}", *_delete_if_present(_to_vm_element(tap)), f"delete {chain}"]


def up_batch(plan: NicPlan, mac_mask: str, mark_mask: int, old_masq: Masq | None = None) -> str:
    """One atomic transaction making the tap's filtering exactly what `plan` says,
    whatever was there before (idempotent), the skeleton included. `old_masq` is what
    the previous up of the tap recorded (its address may have changed since)."""
    tap = plan.tap
    lines = skeleton(mark_mask) + _leave_profiles(tap) + _join_profile(plan)
    lines += _leave_masq(old_masq) + _join_masq(plan)
    lines += _remade_chain("netdev", ingress_chain(tap), _ingress_hook(tap), antispoof_rules(plan))
    egress = private_filter_rules(plan, mac_mask)
    if egress:
        lines += _remade_chain("bridge", egress_chain(tap), "", egress)
        lines.append(f"add {_to_vm_element(tap)}")
    else:
        lines += _drop_egress(tap)
    return _join(lines)


def skeleton_batch(mark_mask: int) -> str:
    return _join(skeleton(mark_mask))


def down_batch(
    tap: str, *, tap_exists: bool, mark_mask: int | None = None, masq: Masq | None = None
) -> str:
    """One atomic transaction removing what up added for the tap, present or not.

    With `mark_mask` the skeleton is (re)made first, for a node where it is missing;
    `masq` is what the tap's up recorded.
    A vanished tap's ingress chain cannot be named with its hook (the device is gone):
    leave it to `delete_ingress` then.
    """
    lines = skeleton(mark_mask) if mark_mask is not None else []
    lines += _leave_profiles(tap) + _leave_masq(masq) + _drop_egress(tap)
    if tap_exists:
        lines += [
            f"add chain netdev {TABLE} {ingress_chain(tap)} {{ {_ingress_hook(tap)} }}",
            f"delete chain netdev {TABLE} {ingress_chain(tap)}",
        ]
    return _join(lines)


def delete_ingress(tap: str) -> str:
    """Delete a vanished tap's ingress chain (kernels 6.x keep it; it fails if absent)."""
    return f"delete chain netdev {TABLE} {ingress_chain(tap)}\n"
