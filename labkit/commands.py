"""The lab's commands: up, down, status, exec, demo, test."""

from __future__ import annotations

import fcntl
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from labkit import (
    cluster,
    debs,
    guest,
    health,
    host,
    hostguard,
    net,
    nodes,
    otherrelease,
    rabbit,
    services,
    settings,
    suiteconf,
)
from labkit.demo import run_demo
from labkit.progress import say, step
from labkit.sh import LabError, in_node, on_master, run
from labkit.teardown import teardown


def prepare_host() -> None:
    if os.geteuid() != 0:
        raise SystemExit(
            "lab: error: run the lab as root (it creates namespaces and installs packages)"
        )
    settings.STATE_DIR.mkdir(parents=True, exist_ok=True)
    settings.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with step("host packages"):
        installed = host.ensure_packages(settings.HOST_PACKAGES)
        host.ensure_kernel_switches()
        if installed:
            say(f"    installed: {' '.join(installed)}")


def build_and_install() -> bool:
    """Build and install this tree's packages; True when a new build was installed."""
    with step("build the suite's .deb packages"):
        digest, suite_debs = debs.build_suite()
        nfqueue = debs.build_netfilterqueue()
    with step("install the suite's packages with apt"):
        installed = debs.install(digest, suite_debs, [nfqueue] if nfqueue else [])
        if not installed:
            say("    already installed: this build")
    return installed


def ensure_helper(rebuild: bool) -> None:
    """The helper VM carries the installed tasks' code: rebuild it with every new build."""
    manifest = Path("/var/lib/snf-image/helper/manifest.json")
    if rebuild or not manifest.exists():
        suiteconf.configure()
        run(["snf-image-update-helper"], timeout=900)
    else:
        say("    already built for this build")


def ensure_services(restart: bool) -> None:
    for index in range(1, health.recorded_nodes() + 1):
        node = settings.NODES[index]
        for service in settings.LAB_SERVICES:
            if services.unit_file(service) is None:
                continue
            if restart:
                services.stop(service, node)
            services.start(service, node)


def _bring_up_master() -> None:
    master = settings.MASTER
    kernel, initrd = guest.assets()
    hostguard.record()
    with step(f"namespace {master.netns} with bridge {settings.BRIDGE}"):
        net.create_node_network(master)
        cluster.prepare_storage_dirs()
    with step(f"sshd on {master.name}"):
        nodes.start_sshd(master)
    with step(f"Ganeti cluster init ({settings.CLUSTER_NAME})"):
        if not cluster.master_answers():
            cluster.init_cluster(kernel, initrd)
    with step("cluster settings, RAPI user"):
        cluster.relax_instance_policy()
        cluster.ensure_rapi_user()
    settings.NODES_FILE.write_text("1\n")


def _add_node2() -> None:
    node = settings.NODES[2]
    with step(f"namespace {node.netns} linked to {settings.MASTER.netns}"):
        net.create_node_network(node)
        net.link_nodes(settings.MASTER, node)
    with step(f"sshd on {node.name}"):
        nodes.start_sshd(node)
        nodes.authorize_master_key(node)
    with step(f"gnt-node add {node.name}"):
        if node.name not in cluster.node_names():
            cluster.add_node(node)
    settings.NODES_FILE.write_text("2\n")


def _remove_node2() -> None:
    node = settings.NODES[2]
    with step(f"remove {node.name}"):
        if node.name in cluster.node_names():
            cluster.remove_node(node)
        net.delete_namespace(node.netns)
    settings.NODES_FILE.write_text("1\n")


@contextmanager
def lab_lock() -> Iterator[None]:
    """One `up` or `down` at a time: a second one waits instead of tearing into the first."""
    settings.LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(settings.LOCK_FILE, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("another ./lab up or down is running: waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def up(wanted_nodes: int | None) -> None:
    with lab_lock():
        _up(wanted_nodes)


def _up(wanted_nodes: int | None) -> None:
    prepare_host()
    new_build = build_and_install()
    with step("guest kernel and initramfs"):
        guest.ensure_assets()
    with step("snf-image helper VM (snf-image-update-helper)"):
        ensure_helper(rebuild=new_build)
    state = health.assess()
    # A rebuilt lab keeps the size it had, unless asked otherwise.
    wanted = wanted_nodes or max(state.nodes, 1)
    if not state.healthy and not state.absent:
        reason = ", ".join(state.problems() or state.leftovers)
        with step(f"clear a half-dead lab ({reason})"):
            teardown()
        state = health.assess()
    if not state.healthy:
        _bring_up_master()
    current = health.recorded_nodes()
    if wanted == 2 and current < 2:
        _add_node2()
    elif wanted == 1 and current == 2:
        _remove_node2()
    with step("cluster kvm parameters (guest kernel, migration)"):
        cluster.apply_kvm_hvparams(*guest.assets())
    with step("RabbitMQ"):
        rabbit.ensure()
    with step("Ganeti network net1 (IPv4 + IPv6, tag nfdhcpd)"):
        cluster.ensure_network()
    with step("the suite's OS and ExtStorage provider are valid"):
        check_suite_recognised()
    with step(f"daemons from their systemd units: {', '.join(settings.LAB_SERVICES)}"):
        ensure_services(restart=suiteconf.configure() or new_build)
    say(f"lab is up: {wanted} node(s), cluster {settings.CLUSTER_NAME}")


def check_suite_recognised() -> None:
    os_out = cluster.diagnose("os")
    storage_out = cluster.diagnose("storage")
    for name, out in (("snf-image", os_out), ("archipelago", storage_out)):
        valid = [
            line
            for line in out.splitlines()
            if name in line and "valid" in line and "invalid" not in line
        ]
        if not valid:
            raise LabError(f"Ganeti does not list {name} as valid:\n{out}")


def down() -> None:
    if os.geteuid() != 0:
        raise SystemExit("lab: error: run the lab as root")
    with lab_lock(), step("tear down the lab"):
        teardown()
    say("lab is down: no namespaces, loop devices or lab processes left")


def status() -> int:
    state = health.assess()
    if state.absent:
        say("lab is down")
        return 3
    for name, ok in state.checks.items():
        say(f"{'ok  ' if ok else 'FAIL'} {name}")
    if state.healthy:
        say(f"lab is up with {state.nodes} node(s)")
        print(on_master(["gnt-instance", "list"], check=False).stdout, end="")
        return 0
    for leftover in state.leftovers:
        say(f"     present: {leftover}")
    say("lab is half-dead: `./lab up` rebuilds it")
    return 1


def exec_on(node_index: int, argv: list[str]) -> None:
    node = settings.NODES.get(node_index)
    if node is None:
        raise SystemExit(f"lab: error: no node {node_index} (nodes: 1, 2)")
    if not net.netns_exists(node.netns):
        raise SystemExit(f"lab: error: {node.name} is not up (`./lab up --nodes {node_index}`)")
    argv = argv or ["/bin/bash", "-i"]
    wrapped = in_node(node, argv)
    os.execvp(wrapped[0], wrapped)


def demo(wanted_nodes: int | None) -> None:
    up(wanted_nodes)
    run_demo()


def test(pytest_args: list[str]) -> int:
    up(2)
    with step("lint (ruff)"):
        ruff = host.ensure_lint_tool()
    for check in (["check", "."], ["format", "--check", "."]):
        lint = subprocess.run([str(ruff), *check], cwd=settings.REPO_DIR)
        if lint.returncode != 0:
            say(f"ruff {check[0]} found problems (above)")
            return lint.returncode
    with step("lintian on the suite's packages"):
        _digest, suite_debs = debs.build_suite()  # the build the lab installed
        lintian = subprocess.run(
            ["lintian", "--fail-on", "error,warning", *map(str, suite_debs)],
            capture_output=True,
            text=True,
        )
    if lintian.returncode != 0:
        print(lintian.stdout + lintian.stderr, end="")
        say("lintian found problems (above)")
        return lintian.returncode
    say("running the test suite (unit + integration against the lab)")
    env = {**os.environ, "GANETI_EXT_LAB_UP": "1"}
    proc = subprocess.run(
        ["/usr/bin/python3", "-m", "pytest", "-ra", *pytest_args],
        cwd=settings.REPO_DIR,
        env=env,
    )
    if pytest_args:
        return proc.returncode  # a chosen part of the suite: this release only
    other = other_release()
    return proc.returncode or other


def other_release() -> int:
    """The other Debian release, in a root of its own packages (labkit/otherrelease.py)."""
    return otherrelease.prove(own_lab_down=down)


__all__ = ["demo", "down", "exec_on", "other_release", "status", "test", "up"]
