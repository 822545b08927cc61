"""snf-events against the lab's real RabbitMQ and RAPI, and end to end through eventd.

The consumer runs from this checkout (PYTHONPATH) inside the master's namespace, the
way an admin would run it there. Each test consumes from its own queue set (a unique
--queue-prefix, bound like the real snf-events-* queues) and deletes it afterwards, so
tests never take messages from a real consumer of the lab. The end-to-end tests need
snf-ganeti-eventd running in the lab and are skipped when it is not.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import kombu
import pytest

from ganeti_ext.amqp.publisher import Publisher
from ganeti_ext.consumer import topology
from labkit import rabbit, services, settings
from labkit.sh import await_line, in_node

REPO = Path(__file__).resolve().parent.parent.parent
PYTHON = "/usr/bin/python3"


def snf_events(lab, *args: str, check: bool = True, timeout: float = 120):
    argv = ["env", f"PYTHONPATH={REPO}", PYTHON, "-m", "ganeti_ext.consumer", *args]
    return lab.run(argv, check=check, timeout=timeout)


@pytest.fixture
def prefix(lab):
    """A private set of consumer queues; deleted after the test."""
    # Under snf-events' own prefix, so the cloud user's permissions cover them.
    name = f"{topology.QUEUE_PREFIX}-itest-{uuid.uuid4().hex[:8]}"
    yield name
    with lab.amqp_socket_factory():
        connection = kombu.Connection(lab.amqp_url)
        connection.connect()
    channel = connection.channel()
    for queue in topology.queues(name) + topology.dead_letter_queues(name):
        try:
            queue(channel).delete()
        except Exception:  # already gone: nothing to clean
            pass
    connection.release()


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "state.db"
    path.parent.chmod(0o755)
    return path


def declare(lab, prefix: str) -> None:
    """Create the queues before publishing (what a long-running consumer has done)."""
    with lab.amqp_socket_factory():
        connection = kombu.Connection(lab.amqp_url)
        connection.connect()
    topology.declare(connection.channel(), prefix)
    connection.release()


def consume(lab, db: Path, prefix: str, *extra: str) -> dict:
    out = snf_events(
        lab, "consume", "--db", f"sqlite:///{db}", "--queue-prefix", prefix, *extra
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def rows(db: Path, query: str, *args) -> list[sqlite3.Row]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def op_body(instance: str, operation: str, status: str, t: int, job: int = 1) -> dict:
    return {
        "type": "ganeti-op-status",
        "instance": instance,
        "operation": operation,
        "status": status,
        "jobId": job,
        "logmsg": "",
        "event_time": [t, 0],
        "cluster": settings.CLUSTER_NAME,
        "result": None,
    }


def test_consume_applies_in_order_once_and_dead_letters(lab, prefix, db):
    declare(lab, prefix)
    name = f"snf-c{uuid.uuid4().hex[:6]}"
    now = int(time.time())
    with lab.amqp_socket_factory(), Publisher([lab.amqp_url]) as publisher:
        publisher.publish(
            "ganeti.snf.event.op", op_body(name, "OP_INSTANCE_CREATE", "success", now), "a"
        )
        publisher.publish(
            "ganeti.snf.event.op", op_body(name, "OP_INSTANCE_SHUTDOWN", "success", now + 2), "b"
        )
        # A late message older than the shutdown, a redelivery, and garbage.
        publisher.publish(
            "ganeti.snf.event.op", op_body(name, "OP_INSTANCE_STARTUP", "success", now + 1), "c"
        )
        publisher.publish(
            "ganeti.snf.event.op", op_body(name, "OP_INSTANCE_CREATE", "success", now), "a"
        )
        publisher.publish("ganeti.snf.event.op", {"type": "ganeti-op-status"}, "bad")
    summary = consume(lab, db, prefix, "--once")
    assert summary["db"] == {"applied": 2, "duplicate": 1, "stale": 1, "dead_lettered": 1}
    (row,) = rows(db, "SELECT state, deleted FROM instances WHERE name = ?", name)
    assert (row["state"], row["deleted"]) == ("STOPPED", 0)

    # The rejected message is in the op queue's dead-letter queue, not lost.
    with lab.amqp_socket_factory():
        connection = kombu.Connection(lab.amqp_url)
        connection.connect()
    dead = kombu.Queue(f"{prefix}-op-dl", durable=True)(connection.channel())
    message = dead.get(no_ack=True)
    connection.release()
    assert message is not None and message.properties["message_id"] == "bad"


def test_queues_carry_the_dead_letter_arguments(lab, prefix):
    declare(lab, prefix)
    out = lab.run(["rabbitmqctl", "-q", "list_queues", "name", "durable", "arguments"]).stdout
    lines = {line.split("\t")[0]: line for line in out.splitlines() if line.startswith(prefix)}
    assert set(lines) == {f"{prefix}-{s}{dl}" for s in topology.BINDINGS for dl in ("", "-dl")}
    assert "ganeti-dl" in lines[f"{prefix}-op"] and f"{prefix}-op-dl" in lines[f"{prefix}-op"]
    assert "\ttrue\t" in lines[f"{prefix}-op"]


def test_tail_shows_live_messages(lab):
    argv = in_node(
        settings.MASTER,
        [
            "env",
            f"PYTHONPATH={REPO}",
            PYTHON,
            "-m",
            "ganeti_ext.consumer",
            "tail",
            "--type",
            "ganeti-op-status",
            "--idle-exit",
            "4",
        ],
    )
    name = f"snf-t{uuid.uuid4().hex[:6]}"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = await_line(
            proc, proc.stderr, "listening"
        )  # its queue exists: nothing published from now on is missed
        with lab.amqp_socket_factory(), Publisher([lab.amqp_url]) as publisher:
            publisher.publish(
                "ganeti.snf.event.progress",
                {"type": "image-info", "instance": name, "event_time": [1, 0], "messages": ["x"]},
            )
            publisher.publish(
                "ganeti.snf.event.op",
                op_body(name, "OP_INSTANCE_REBOOT", "running", int(time.time()), job=77),
            )
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, said + err
    # Other jobs of the lab may show up too; ours must, and no other type may.
    assert f"ganeti-op-status {name} OP_INSTANCE_REBOOT running job=77" in out
    assert "image-info" not in out


def test_reconcile_against_real_rapi(lab, db, instance_name):
    name = instance_name()
    lab.gnt(
        "gnt-instance", "add", "-t", "diskless", "-o", "snf-image+default", "-O", "img_id=null",
        "-H", "fake", "-B", "memory=64", "--net", f"0:network={settings.NETWORK.name},ip=pool",
        "--no-name-check", "--no-ip-check", "-n", settings.MASTER.name, name,
    )  # fmt: skip
    common = [
        "reconcile", "--db", f"sqlite:///{db}", "--user", settings.RAPI_USER,
        "--password-file", str(settings.RAPI_PASSWORD_FILE), "--ca-file",
        "/var/lib/ganeti/rapi.pem", "--json",
    ]  # fmt: skip

    def reconcile(*extra: str) -> dict:
        proc = snf_events(lab, *common, *extra, check=False)
        assert proc.returncode in (0, 3), proc.stderr
        report = json.loads(proc.stdout)
        return {f["name"]: f for f in report["findings"]}

    assert reconcile()[name]["kind"] == "orphan"
    reconcile("--fix")
    assert name not in reconcile()
    (row,) = rows(db, "SELECT state, nics FROM instances WHERE name = ?", name)
    assert row["state"] == "STARTED" and json.loads(row["nics"])[0]["network"] == "net1"

    lab.gnt("gnt-instance", "shutdown", "--timeout=0", name)
    finding = reconcile()[name]
    assert finding["kind"] == "stale" and "STOPPED in Ganeti" in finding["differences"][0]
    reconcile("--fix")
    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)
    assert reconcile()[name]["kind"] == "unsynced"
    reconcile("--fix")
    (row,) = rows(db, "SELECT state, deleted FROM instances WHERE name = ?", name)
    assert (row["state"], row["deleted"]) == ("DESTROYED", 1)


# -- end to end through snf-ganeti-eventd ---------------------------------------------
@pytest.fixture
def eventd(lab):
    # The lab starts it from its systemd unit on every node (labkit.services).
    assert services.running("snf-ganeti-eventd", settings.MASTER), "eventd runs in the lab"
    return lab


def wait_for(check, timeout: float = 60, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


def test_instance_lifecycle_reaches_the_database(eventd, prefix, db, instance_name):
    lab = eventd
    declare(lab, prefix)
    name = instance_name()
    lab.gnt(
        "gnt-instance", "add", "-t", "diskless", "-o", "snf-image+default", "-O", "img_id=null",
        "-H", "fake", "-B", "memory=64", "--net", f"0:network={settings.NETWORK.name},ip=pool",
        "--tags", "synnefo:network:0:limited",
        "--no-name-check", "--no-ip-check", "-n", settings.MASTER.name, name,
    )  # fmt: skip

    def instance():
        consume(lab, db, prefix, "--idle-exit", "2")
        found = rows(db, "SELECT * FROM instances WHERE name = ?", name)
        return found[0] if found and found[0]["state"] == "STARTED" else None

    row = wait_for(instance)
    assert row is not None, "the create reached the consumer"
    (nic,) = json.loads(row["nics"])
    assert nic["network"] == "net1" and nic["firewall"] == "limited"
    assert row["last_operation"] == "OP_INSTANCE_CREATE" and row["last_status"] == "success"

    lab.gnt("gnt-instance", "shutdown", "--timeout=0", name)
    lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name)

    def deleted():
        consume(lab, db, prefix, "--idle-exit", "2")
        return rows(db, "SELECT deleted FROM instances WHERE name = ? AND deleted = 1", name)

    assert wait_for(deleted), "the remove reached the consumer"
    counters = {r["name"]: r["value"] for r in rows(db, "SELECT * FROM counters")}
    assert counters.get("dead_lettered", 0) == 0


def test_progress_monitor_events_reach_the_database(eventd, prefix, db):
    lab = eventd
    declare(lab, prefix)
    name = f"snf-p{uuid.uuid4().hex[:6]}"
    events = "\n".join(
        json.dumps(event)
        for event in (
            {"type": "image-copy-progress", "position": 1, "total": 4},
            {"type": "image-copy-progress", "position": 4, "total": 4},
            {"subtype": "task-start", "task": "FixPartitionTable"},
        )
    )
    lab.run(
        ["env", f"PYTHONPATH={REPO}", f"INSTANCE_NAME={name}", PYTHON, "-m",
         "ganeti_ext.progress"],
        input=events + "\n",
    )  # fmt: skip

    def progress():
        consume(lab, db, prefix, "--idle-exit", "2")
        found = rows(db, "SELECT * FROM progress WHERE instance = ?", name)
        return found[0] if found and found[0]["task"] else None

    row = wait_for(progress)
    assert row is not None, "the progress events reached the consumer"
    assert row["copy_progress"] == 100.0 and row["task"] == "FixPartitionTable"


def test_consume_reads_the_broker_url_from_a_file(lab, prefix, db, tmp_path):
    """What snf-events.service runs: the cloud layer's broker user (password included,
    permissions as docs/amqp-contract.md gives them) comes from a file, never from the
    command line."""
    declare(lab, prefix)
    name = f"snf-c{uuid.uuid4().hex[:6]}"
    with lab.amqp_socket_factory(), Publisher([lab.amqp_url]) as publisher:
        body = op_body(name, "OP_INSTANCE_CREATE", "success", int(time.time()))
        publisher.publish("ganeti.snf.event.op", body, f"{name}-create")
    urls = tmp_path / "broker-urls"
    urls.write_text(f"# the lab's broker, as the cloud layer sees it\n{rabbit.cloud_url()}\n")
    urls.chmod(0o600)
    summary = consume(lab, db, prefix, "--once", "--url-file", str(urls))
    assert summary["db"]["applied"] == 1
    (row,) = rows(db, "SELECT state FROM instances WHERE name = ?", name)
    assert row["state"] == "STARTED"
