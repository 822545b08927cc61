"""iptables/ip6tables batches for per-NIC firewall profiles (pure).

Traffic towards a VM passes FORWARD (bridged ports need br_netfilter, which also gives
conntrack, something nft's bridge family cannot do on this kernel). The suite keeps its
rules in chains of its own: FORWARD jumps once to `snf-network`, which holds one jump
per firewalled tap into that tap's chain `snf-<tap>`. Batches go to
`iptables-restore --noflush` so a tap's chain and its jump change in one atomic commit.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganeti_ext.network.plan import NicPlan

DISPATCH = "snf-network"
FAMILIES = (4, 6)
LIMITED_TCP_PORTS = (22, 3389)


def tap_chain(tap: str) -> str:
    return f"snf-{tap}"


def profile_rules(profile: str | None, family: int) -> list[str]:
    """A profile's rules for traffic towards the VM, in order (empty: no filtering).

    protected: replies to what the VM started (TCP, DNS and every other conntrack'ed
    flow) and ICMP/ICMPv6 (echo, errors and IPv6 neighbour discovery, which upstream
    dropped); limited: that plus TCP 22 and 3389; unprotected: everything.
    """
    if profile not in ("protected", "limited"):
        return []
    icmp = "icmp" if family == 4 else "ipv6-icmp"
    rules = [
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        f"-p {icmp} -j ACCEPT",
    ]
    if profile == "limited":
        rules += [f"-p tcp -m tcp --dport {port} -j ACCEPT" for port in LIMITED_TCP_PORTS]
    rules.append("-j DROP")
    return rules


def jump_rule(tap: str, mode: str) -> str:
    """The dispatch rule sending traffic bound for `tap` into its chain (as -S prints it)."""
    if mode == "bridged":
        match = f"-m physdev --physdev-out {tap} --physdev-is-bridged"
    else:
        match = f"-o {tap}"
    return f"{match} -j {tap_chain(tap)}"


@dataclass(frozen=True)
class Dispatch:
    """The dispatch chain as read from `iptables -S snf-network` (None: no chain yet)."""

    rules: tuple[str, ...] | None

    def jumps_to(self, tap: str) -> list[str]:
        target = f"-j {tap_chain(tap)}"
        return [rule for rule in self.rules or () if rule.endswith(target)]


def parse_dispatch(output: str | None) -> Dispatch:
    """`iptables -S snf-network` output -> Dispatch; None output means the chain is absent."""
    if output is None:
        return Dispatch(None)
    prefix = f"-A {DISPATCH} "
    return Dispatch(
        tuple(
            line[len(prefix) :].strip() for line in output.splitlines() if line.startswith(prefix)
        )
    )


def _ensure_dispatch(dispatch: Dispatch) -> list[str]:
    if dispatch.rules is not None:
        return []
    return [f":{DISPATCH} - [0:0]", f"-I FORWARD 1 -j {DISPATCH}"]


def up_batch(plan: NicPlan, family: int, dispatch: Dispatch) -> str | None:
    """iptables-restore --noflush input making the tap's filtering match its profile;
    None when nothing needs to change (no profile, and nothing left from before)."""
    rules = profile_rules(plan.profile, family)
    chain = tap_chain(plan.tap)
    existing = dispatch.jumps_to(plan.tap)
    lines: list[str] = []
    if rules:
        lines += _ensure_dispatch(dispatch)
        lines.append(f":{chain} - [0:0]")  # creates the chain, or flushes it
        lines += [f"-A {chain} {rule}" for rule in rules]
        wanted = jump_rule(plan.tap, plan.mode)
        if existing != [wanted]:
            lines += [f"-D {DISPATCH} {rule}" for rule in existing]
            lines.append(f"-A {DISPATCH} {wanted}")
    elif existing:
        lines += _remove(plan.tap, existing)
    if not lines:
        return None
    return "*filter\n" + "\n".join(lines) + "\nCOMMIT\n"


def _remove(tap: str, existing: list[str]) -> list[str]:
    return [f"-D {DISPATCH} {rule}" for rule in existing] + [
        f":{tap_chain(tap)} - [0:0]",  # flush first: -X refuses a chain with rules
        f"-X {tap_chain(tap)}",
    ]


def down_batch(tap: str, dispatch: Dispatch) -> str | None:
    """iptables-restore --noflush input removing the tap's chain and jump (None: none)."""
    existing = dispatch.jumps_to(tap)
    if not existing:
        return None
    return "*filter\n" + "\n".join(_remove(tap, existing)) + "\nCOMMIT\n"
