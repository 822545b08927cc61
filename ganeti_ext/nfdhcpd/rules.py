"""nfdhcpd-rules: the iptables/ip6tables rules that feed nfdhcpd's queues, up or down.

All rules live in a chain of nfdhcpd's own (NFDHCPD in the mangle table), entered by one
jump from PREROUTING, so `up` and `down` never touch anybody else's rules and are
idempotent: `up` (re)creates the chain's content and adds the jump only if missing,
`down` removes every jump and the chain. `--queue-bypass` lets packets through while no
daemon listens, so a stopped nfdhcpd never blackholes a guest's DHCP.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ganeti_ext import paths
from ganeti_ext.cli import run_main
from ganeti_ext.errors import CommandError
from ganeti_ext.nfdhcpd import config as nfconfig
from ganeti_ext.runner import DEFAULT_RUNNER, Runner

PROG = "nfdhcpd-rules"
CHAIN = "NFDHCPD"
TABLE = "mangle"
# Routed taps (the packet's in-device is the tap) and bridged taps (the bridge is the
# in-device; the tap is the physical in-device, seen through br_netfilter).
DEVICE_MATCHES = (("-i", "tap+"), ("-m", "physdev", "--physdev-in", "tap+"))


def chain_rules(queues: dict[str, int]) -> dict[str, list[list[str]]]:
    """Per tool (iptables, ip6tables), the rule specs of the NFDHCPD chain."""
    v4: list[list[str]] = []
    v6: list[list[str]] = []
    for device in DEVICE_MATCHES:
        if "dhcpv4" in queues:
            v4.append([*device, "-p", "udp", "--dport", "67", *_queue(queues["dhcpv4"])])
        if "rs" in queues:
            icmp = ["-p", "ipv6-icmp", "--icmpv6-type", "router-solicitation"]
            v6.append([*device, *icmp, *_queue(queues["rs"])])
        if "ns" in queues:
            icmp = ["-p", "ipv6-icmp", "--icmpv6-type", "neighbour-solicitation"]
            v6.append([*device, *icmp, *_queue(queues["ns"])])
        if "dhcpv6" in queues:
            v6.append([*device, "-p", "udp", "--dport", "547", *_queue(queues["dhcpv6"])])
    return {"iptables": v4, "ip6tables": v6}


def _queue(number: int) -> list[str]:
    return ["-j", "NFQUEUE", "--queue-num", str(number), "--queue-bypass"]


def up_commands(queues: dict[str, int]) -> list[tuple[list[str], bool]]:
    """(argv, must succeed) to install the rules; runs top to bottom."""
    out: list[tuple[list[str], bool]] = []
    for tool, specs in chain_rules(queues).items():
        out.append(([tool, "-w", "-t", TABLE, "-N", CHAIN], False))  # may exist already
        out.append(([tool, "-w", "-t", TABLE, "-F", CHAIN], True))
        out.extend(([tool, "-w", "-t", TABLE, "-A", CHAIN, *spec], True) for spec in specs)
    return out


def jump(tool: str, action: str) -> list[str]:
    return [tool, "-w", "-t", TABLE, action, "PREROUTING", "-j", CHAIN]


def up(queues: dict[str, int], runner: Runner = DEFAULT_RUNNER) -> None:
    for argv, must in up_commands(queues):
        runner.run(argv, timeout=30, check=must)
    for tool in ("iptables", "ip6tables"):
        if runner.run(jump(tool, "-C"), timeout=30, check=False).returncode != 0:
            runner.run([*jump(tool, "-I")[:6], "1", "-j", CHAIN], timeout=30)


def down(runner: Runner = DEFAULT_RUNNER) -> None:
    for tool in ("iptables", "ip6tables"):
        for _ in range(100):  # every copy of the jump, should there be several
            if runner.run(jump(tool, "-D"), timeout=30, check=False).returncode != 0:
                break
        runner.run([tool, "-w", "-t", TABLE, "-F", CHAIN], timeout=30, check=False)
        runner.run([tool, "-w", "-t", TABLE, "-X", CHAIN], timeout=30, check=False)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Install (up) or remove (down) the iptables and ip6tables rules that "
        f"hand DHCP, DHCPv6, RS and NS packets from taps to nfdhcpd (chain {CHAIN} in the "
        f"{TABLE} table, one jump from PREROUTING). Both are idempotent.",
    )
    parser.add_argument("action", choices=("up", "down", "show"))
    parser.add_argument(
        "--config",
        metavar="PATH",
        help=f"configuration file (default: {paths.NFDHCPD_CONF}; a file named here must exist)",
    )
    args = parser.parse_args(argv)
    if args.action == "down":
        down()
        return 0
    config_path = args.config or paths.NFDHCPD_CONF
    queues = nfconfig.load(config_path, must_exist=args.config is not None).queues
    if args.action == "show":
        for tool, specs in chain_rules(queues).items():
            for spec in specs:
                print(tool, "-t", TABLE, "-A", CHAIN, *spec)
        return 0
    try:
        up(queues)
    except CommandError:
        down()
        raise
    return 0


def run() -> None:
    run_main(main, PROG)
