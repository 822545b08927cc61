"""RabbitMQ on the master namespace's loopback (LAB.md: ready in about 11 s)."""

from __future__ import annotations

import time
from pathlib import Path

from labkit.sh import LabError, on_master

ENV_CONF = Path("/etc/rabbitmq/rabbitmq-env.conf")
CONF = Path("/etc/rabbitmq/rabbitmq.conf")
ERL_ENV = {"ERL_EPMD_ADDRESS": "127.0.0.1", "HOME": "/var/lib/rabbitmq"}

ENV_CONF_TEXT = """\
# ganeti-ext lab: RabbitMQ on the lab namespace's loopback only
NODENAME=rabbit@localhost
NODE_IP_ADDRESS=127.0.0.1
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
"""
CONF_TEXT = """\
# ganeti-ext lab
listeners.tcp.default = 127.0.0.1:5672
loopback_users.guest = true
"""


def _with_erl_env(argv: list[str]) -> list[str]:
    return ["env", *(f"{key}={value}" for key, value in ERL_ENV.items()), *argv]


def ctl(*args: str, timeout: float = 60, check: bool = True):
    return on_master(_with_erl_env(["rabbitmqctl", *args]), timeout=timeout, check=check)


def running() -> bool:
    try:
        return ctl("status", timeout=30, check=False).returncode == 0
    except LabError:
        return False


def start() -> None:
    if running():
        return
    ENV_CONF.parent.mkdir(parents=True, exist_ok=True)
    ENV_CONF.write_text(ENV_CONF_TEXT)
    CONF.write_text(CONF_TEXT)
    on_master(_with_erl_env(["rabbitmq-server", "-detached"]), timeout=60)
    # await_startup gives up at once while the node has not registered with epmd yet.
    deadline = time.monotonic() + 120
    while ctl("await_startup", "--timeout", "10", timeout=30, check=False).returncode != 0:
        if time.monotonic() > deadline:
            raise LabError("RabbitMQ did not start within 120 s (see /var/log/rabbitmq)")
        time.sleep(1)


def stop() -> None:
    if running():
        ctl("stop", timeout=60, check=False)
