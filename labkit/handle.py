"""What integration tests get: the running lab and helpers to drive it.

gnt-* commands, job results over RAPI, AMQP connections and guest consoles, all inside
the lab's namespaces. Used by tests/conftest.py; kept here so the lab owns its details.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import shlex
import socket
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from labkit import cluster, ganeti_release, netns, settings
from labkit.sh import LabError, checked, in_node, run


@dataclass(frozen=True)
class Lab:
    nodes: int

    @property
    def master(self) -> settings.Node:
        return settings.MASTER

    def node(self, index: int) -> settings.Node:
        return settings.NODES[index]

    # -- commands ---------------------------------------------------------------------
    def run(
        self,
        argv: Sequence[str],
        *,
        node: int = 1,
        check: bool = True,
        timeout: float = 300,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv on a node the way Ganeti's daemons would (namespace, clean env)."""
        return run(in_node(settings.NODES[node], argv), check=check, timeout=timeout, input=input)

    def gnt(
        self, *argv: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """A gnt-* command on the master (a guest stop retried past 3.1 rc2's QMP bug)."""
        proc = ganeti_release.stop_retried(
            argv, lambda: self.run(list(argv), check=False, timeout=timeout)
        )
        return checked(proc) if check else proc

    def hotplug_flags(self) -> list[str]:
        """What makes `gnt-instance modify` hotplug with the lab's Ganeti."""
        return ganeti_release.hotplug_flags(ganeti_release.installed_version())

    def rename_flags(self) -> list[str]:
        """What makes `gnt-instance rename` take an unresolvable name with the lab's Ganeti."""
        return ganeti_release.rename_flags(ganeti_release.installed_version())

    def submit(self, *argv: str) -> str:
        """Submit a gnt-* command as a job (--submit) and return its job id."""
        proc = self.gnt(*argv[:2], "--submit", *argv[2:])
        # gnt-* prints "JobID: N" on stderr, or "N: <name>" for instance commands.
        found = re.search(r"JobID: (\d+)|^(\d+): ", proc.stdout + proc.stderr, re.MULTILINE)
        if not found:
            raise LabError(f"no job id in the output of {argv[:2]}: {proc.stdout}{proc.stderr}")
        return found.group(1) or found.group(2)

    def instances(self) -> list[dict[str, str]]:
        return cluster.instances()

    # -- RAPI -------------------------------------------------------------------------
    def rapi(self, method: str, path: str, body: object | None = None) -> object:
        """Call the lab's RAPI (HTTPS on the master's loopback) as the tests' user."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the cluster's self-signed certificate
        with netns.entered(settings.MASTER.netns):
            conn = http.client.HTTPSConnection(
                "127.0.0.1", settings.RAPI_PORT, context=context, timeout=60
            )
            conn.connect()
        token = base64.b64encode(f"{settings.RAPI_USER}:{cluster.rapi_password()}".encode())
        headers = {"Authorization": f"Basic {token.decode()}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status >= 400:
            raise LabError(f"RAPI {method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data else None

    def job(self, job_id: str) -> dict:
        return self.rapi("GET", f"/2/jobs/{job_id}")  # type: ignore[return-value]

    def wait_job(self, job_id: str, timeout: float = 600) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in ("success", "error", "canceled"):
                return job
            time.sleep(0.5)
        raise LabError(f"job {job_id} did not finish within {timeout:.0f} s")

    # -- AMQP -------------------------------------------------------------------------
    def amqp_socket_factory(self):
        """A context manager: sockets opened inside it live in the master's namespace."""
        return netns.entered(settings.MASTER.netns)

    @property
    def amqp_url(self) -> str:
        return settings.AMQP_URL

    # -- guests -----------------------------------------------------------------------
    def console(
        self, instance: str, commands: Sequence[str], *, node: int = 1, wait: float = 3.0
    ) -> str:
        """Type commands on a KVM guest's serial console; returns what it printed.

        qemu drops console output while nobody is connected, so we ask rather than read
        a boot log: the lab guest runs a shell on ttyS0 once booted.
        """
        sock = f"/run/ganeti/kvm-hypervisor/ctrl/{instance}.serial"
        typed = "".join(f"{c}\r" for c in ["", *commands])
        script = (
            f"(sleep 0.5; printf %s {shlex.quote(typed)}; sleep {wait}) | "
            f"timeout {wait + 5} socat - UNIX-CONNECT:{sock}"
        )
        return self.run(["sh", "-c", script], node=node, check=False, timeout=wait + 30).stdout

    def wait_console(
        self, instance: str, command: str, expect: str, *, node: int = 1, timeout: float = 120
    ) -> str:
        """Repeat a console command until its output contains expect (the guest is booting)."""
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.console(instance, [command], node=node, wait=2.0)
            if expect in out:
                return out
        raise LabError(
            f"{instance}: `{command}` never printed {expect!r}; last output:\n{out[-800:]}"
        )


def port_open(host: str, port: int, namespace: str) -> bool:
    with netns.entered(namespace):
        sock = socket.socket()
    sock.settimeout(2)
    try:
        return sock.connect_ex((host, port)) == 0
    finally:
        sock.close()


def ensure_up(nodes: int | None = None) -> Lab:
    """The running lab, brought up (or repaired) first if it is not healthy."""
    from labkit import commands, health

    state = health.assess()
    if not state.healthy or (nodes is not None and state.nodes < nodes):
        commands.up(nodes)
        state = health.assess()
        if not state.healthy:
            raise LabError(f"the lab is not healthy after `up`: {state.problems()}")
    return Lab(nodes=state.nodes)
