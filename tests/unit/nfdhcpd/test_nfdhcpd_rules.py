"""nfdhcpd-rules: the NFDHCPD chain's rules and the up/down command sequences (no iptables)."""

from __future__ import annotations

import pytest

from ganeti_ext.errors import CommandError
from ganeti_ext.nfdhcpd import rules
from ganeti_ext.runner import CompletedCommand

ALL = {"dhcpv4": 42, "rs": 43, "ns": 44, "dhcpv6": 45}


class ScriptedRunner:
    """Records every command; `fail` maps an argv prefix to the exit code it returns."""

    def __init__(self, fail: dict[tuple[str, ...], int] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail or {}

    def run(self, argv, *, timeout, input=None, env=None, check=True):
        argv = list(argv)
        self.calls.append(argv)
        code = next((c for p, c in self.fail.items() if tuple(argv[: len(p)]) == p), 0)
        if check and code:
            raise CommandError(argv, code, "scripted failure")
        return CompletedCommand(tuple(argv), code, b"", b"")


def test_chain_rules_cover_routed_and_bridged_taps():
    specs = rules.chain_rules(ALL)
    queue = ["-j", "NFQUEUE", "--queue-num", "42", "--queue-bypass"]
    assert specs["iptables"] == [
        ["-i", "tap+", "-p", "udp", "--dport", "67", *queue],
        ["-m", "physdev", "--physdev-in", "tap+", "-p", "udp", "--dport", "67", *queue],
    ]
    v6 = [" ".join(spec) for spec in specs["ip6tables"]]
    assert len(v6) == 6
    assert (
        "-i tap+ -p ipv6-icmp --icmpv6-type router-solicitation "
        "-j NFQUEUE --queue-num 43 --queue-bypass"
    ) in v6
    assert any("--physdev-in tap+" in r and "neighbour-solicitation" in r for r in v6)
    assert sum("--dport 547 -j NFQUEUE --queue-num 45" in r for r in v6) == 2


def test_every_rule_bypasses_the_queue_when_nobody_listens():
    for specs in rules.chain_rules(ALL).values():
        assert all(spec[-1] == "--queue-bypass" for spec in specs)


def test_only_enabled_protocols_get_rules():
    specs = rules.chain_rules({"dhcpv4": 142})
    assert specs["ip6tables"] == [] and len(specs["iptables"]) == 2
    assert all("142" in spec for spec in specs["iptables"])


def test_up_commands_recreate_the_chain_content():
    commands = rules.up_commands({"dhcpv4": 42})
    head = [argv for argv, _must in commands if argv[0] == "iptables"][:2]
    assert head == [
        ["iptables", "-w", "-t", "mangle", "-N", "NFDHCPD"],
        ["iptables", "-w", "-t", "mangle", "-F", "NFDHCPD"],
    ]
    assert commands[0][1] is False  # the chain may exist already
    assert all(must for argv, must in commands if argv[4] != "-N")


def test_up_adds_the_jump_only_when_missing():
    runner = ScriptedRunner(fail={("ip6tables", "-w", "-t", "mangle", "-C"): 1})
    rules.up(ALL, runner)
    inserts = [c for c in runner.calls if "-I" in c]
    assert inserts == [
        ["ip6tables", "-w", "-t", "mangle", "-I", "PREROUTING", "1", "-j", "NFDHCPD"]
    ]


def test_up_is_idempotent_against_existing_chain():
    runner = ScriptedRunner(fail={("iptables", "-w", "-t", "mangle", "-N"): 1})
    rules.up({"dhcpv4": 42}, runner)  # -N fails (chain exists): not an error
    assert ["iptables", "-w", "-t", "mangle", "-F", "NFDHCPD"] in runner.calls


def test_down_removes_every_jump_then_the_chain():
    class TwoJumps(ScriptedRunner):
        deleted = 0

        def run(self, argv, **kw):
            if "-D" in argv and argv[0] == "iptables":
                self.deleted += 1
                self.fail[("iptables", "-w", "-t", "mangle", "-D")] = int(self.deleted > 2)
            return super().run(argv, **kw)

    runner = TwoJumps(fail={("ip6tables", "-w", "-t", "mangle", "-D"): 1})
    rules.down(runner)
    v4 = [c[4:] for c in runner.calls if c[0] == "iptables"]
    assert v4 == [
        ["-D", "PREROUTING", "-j", "NFDHCPD"],
        ["-D", "PREROUTING", "-j", "NFDHCPD"],
        ["-D", "PREROUTING", "-j", "NFDHCPD"],
        ["-F", "NFDHCPD"],
        ["-X", "NFDHCPD"],
    ]
    assert [c[4] for c in runner.calls if c[0] == "ip6tables"] == ["-D", "-F", "-X"]


def test_main_show_prints_the_rules(tmp_path, capsys):
    conf = tmp_path / "nfdhcpd.conf"
    conf.write_text("[ipv6]\nenable_ipv6 = no\n[dhcp]\ndhcp_queue = 142\n")
    assert rules.main(["show", "--config", str(conf)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("iptables -t mangle -A NFDHCPD -i tap+ -p udp --dport 67")
    assert len(lines) == 2 and all("--queue-num 142" in line for line in lines)


@pytest.mark.parametrize("action", ["sideways", ""])
def test_main_rejects_unknown_actions(action):
    with pytest.raises(SystemExit):
        rules.main([action])
