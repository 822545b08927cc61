"""RabbitMQ on the master namespace's loopback (ready in about 11 s)."""

from __future__ import annotations

import time
from pathlib import Path

from ganeti_ext.amqp import routing
from labkit import settings
from labkit.sh import LabError, on_master, stored_secret

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
CONF_TEXT = f"""\
# ganeti-ext lab: loopback for local clients, the master's lab address for other nodes
listeners.tcp.1 = 127.0.0.1:5672
listeners.tcp.2 = {settings.MASTER.ip}:5672
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


def ensure() -> None:
    """Running with the lab's configuration (restarted when that changed) and its user."""
    changed = False
    for path, text in ((ENV_CONF, ENV_CONF_TEXT), (CONF, CONF_TEXT)):
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            changed = True
    is_running = running()
    if is_running and changed:
        stop()
        is_running = False
    if not is_running:
        on_master(_with_erl_env(["rabbitmq-server", "-detached"]), timeout=60)
        # await_startup gives up at once while the node has not registered with epmd yet.
        deadline = time.monotonic() + 120
        while ctl("await_startup", "--timeout", "10", timeout=30, check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise LabError("RabbitMQ did not start within 120 s (see /var/log/rabbitmq)")
            time.sleep(1)
    ensure_user()


def password() -> str:
    return stored_secret(settings.AMQP_PASSWORD_FILE)


def cloud_password() -> str:
    return stored_secret(settings.AMQP_CLOUD_PASSWORD_FILE)


def node_url() -> str:
    """The broker URL for the suite's daemons on every lab node."""
    return f"amqp://{settings.AMQP_USER}:{password()}@{settings.MASTER.ip}:5672//"


def cloud_url() -> str:
    """The broker URL of the cloud layer's consumer (snf-events)."""
    return f"amqp://{settings.AMQP_CLOUD_USER}:{cloud_password()}@{settings.MASTER.ip}:5672//"


def ensure_user() -> None:
    """The broker users an admin would make, with the permissions docs/amqp-contract.md
    gives them: the nodes' (declare and publish to `ganeti`, nothing else) and the cloud
    consumer's (its own queues). guest may only log in over loopback (the tests' admin)."""
    users = ctl("list_users", "--quiet", timeout=60).stdout.split()
    for user, secret, permissions in (
        (settings.AMQP_USER, password(), routing.NODE_PERMISSIONS),
        (settings.AMQP_CLOUD_USER, cloud_password(), routing.CONSUMER_PERMISSIONS),
    ):
        if user not in users:
            ctl("add_user", user, secret, timeout=60)
        ctl("set_permissions", "-p", "/", user, *permissions, timeout=60)


def pause() -> None:
    """Stop the broker application (clients lose their connections); `resume` brings it back."""
    ctl("stop_app", timeout=60)


def resume() -> None:
    ctl("start_app", timeout=120)
    ctl("await_startup", "--timeout", "60", timeout=90)


def stop() -> None:
    if running():
        ctl("stop", timeout=60, check=False)
