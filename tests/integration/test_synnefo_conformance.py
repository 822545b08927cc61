"""A real Synnefo (Cyclades) can run on this suite: every message the lab sends for the
operations Cyclades drives is judged by a model of upstream Cyclades' acceptance rules
(cyclades_model.py, written from its code), and the consumer's queues sit beside the
dispatcher's on one broker.

Driven for real: a dispatcher-style heartbeat (a dry-run cluster tag job through RAPI),
a create with tags at creation, a set-params that fails, a create that fails with opportunistic
locking (its job_fields replayed the way Cyclades does into RAPI CreateInstance), and
progress events sent to `snf-progress-monitor <instance>` as upstream snf-image runs it
(test_snf_image.py follows a real deployment's progress through the same monitor).
"""

from __future__ import annotations

import json
import random
import time
import uuid

import cyclades_model as cyclades
import kombu
import pytest
from amqp_capture import Capture
from instances import add_instance

from ganeti_ext.amqp.publisher import Publisher
from ganeti_ext.amqp.routing import DEAD_LETTER_EXCHANGE, EXCHANGE
from ganeti_ext.consumer import topology
from labkit import rabbit, settings

SECRET = "Conformance-Secret-9"


@pytest.fixture
def capture(lab):
    seen = Capture(lab, name="conformance")
    yield seen
    seen.close()


def op_message(name: str, operation: str, status: str):
    return lambda key, body: (
        body.get("instance") == name
        and body.get("operation") == operation
        and body.get("status") == status
        and body.get("type") == "ganeti-op-status"
    )


def snf_name() -> str:
    # The shape Cyclades gives instances (BACKEND_PREFIX_ID + database id).
    return f"snf-{random.randint(10**8, 10**9)}"


def test_cyclades_accepts_what_the_lab_sends(lab, capture):
    name, failed = snf_name(), snf_name()
    # The dispatcher's status check: a dry-run cluster tag through RAPI, answered while
    # the job waits (dispatcher.handle_request waits 5 s for it).
    tag = f"snf:eventd:heartbeat:conformance:{uuid.uuid4().hex[:6]}"
    lab.rapi("PUT", f"/2/tags?tag={tag}&dry-run=1")
    heartbeat = capture.wait("heartbeat", lambda key, body: key == "eventd.heartbeat")
    assert heartbeat["cluster"] == settings.CLUSTER_NAME

    try:
        add_instance(lab, name, extra=("--tags", "conformance:a,conformance:b"))
        created = capture.wait("create success", op_message(name, "OP_INSTANCE_CREATE", "success"))
        assert created["tags"] == ["conformance:a", "conformance:b"]
        assert created["instance_nics"][0]["network"] == settings.NETWORK.name
        proc = lab.gnt(
            "gnt-instance", "modify", "--net", "add:network=no-such-network", name, check=False
        )
        assert proc.returncode != 0
        modify = capture.wait("failed modify", op_message(name, "OP_INSTANCE_SET_PARAMS", "error"))
        assert {"instance_nics", "instance_disks", "tags"} <= set(modify)

        # Upstream snf-image: `$PROGRESS_MONITOR "$instance"`, its own fields included.
        upstream_lines = [
            {"type": "image-copy-progress", "position": 50, "total": 100, "progress": 50.0},
            {"type": "image-info", "messages": ["Image size: 2 GiB"], "timestamp": time.time()},
            {"type": "image-warning", "messages": ["no swap partition"], "timestamp": 1.5},
            {"type": "image-helper", "subtype": "task-end", "task": "FixPartitionTable"},
        ]
        lab.run(
            ["snf-progress-monitor", name],
            input="".join(json.dumps(line) + "\n" for line in upstream_lines),
        )
        capture.wait(
            "image-warning",
            lambda key, body: body.get("instance") == name and body["type"] == "image-warning",
        )

        body = failing_create_body(failed)
        job = lab.rapi("POST", "/2/instances", body)
        assert lab.wait_job(str(job))["status"] == "error"
        error = capture.wait("failed create", op_message(failed, "OP_INSTANCE_CREATE", "error"))
        fields = error["job_fields"]
        assert SECRET not in json.dumps(error)
        assert isinstance(fields["osparams"], dict) and "img_passwd" not in fields["osparams"]
        assert fields["iallocator"] == "hail" and fields["disks"] == body["disks"]
        # Ganeti 3 retries a temporary shortage itself (it turns opportunistic locking off
        # and tries again), so the failure recorded is final and Cyclades would not retry
        # on its own; the retry it would make is replayed here for real (as a dry run):
        # RAPI takes the body.
        replay, _ = cyclades.replay_create(fields)
        replay["osparams"]["img_passwd"] = SECRET  # the cloud layer adds what it holds
        retried = lab.rapi("POST", "/2/instances?dry-run=1", replay)
        assert retried is not None
    finally:
        lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name, check=False)

    ours = [
        (key, body)
        for key, body in capture.drain()
        if body.get("instance") in (name, failed) or key == "eventd.heartbeat"
    ]
    # Hook messages are this suite's addition, on a key the dispatcher does not bind.
    for_cyclades = [(key, body) for key, body in ours if key in cyclades.bindings()]
    assert {body["type"] for key, body in ours if (key, body) not in for_cyclades} <= {
        "ganeti-hook"
    }
    judged = [(key, body, *cyclades.judge(key, body)) for key, body in for_cyclades]
    refused = [(key, body.get("type"), body.get("operation"), why)
               for key, body, outcome, why in judged
               if outcome not in (cyclades.APPLIED, cyclades.IGNORED)]  # fmt: skip
    assert not refused, refused
    assert sum(outcome == cyclades.APPLIED for *_, outcome, _ in judged) >= 10


def failing_create_body(name: str) -> dict:
    """What Cyclades submits (backend.create_instance), asking for more memory than any
    lab node has, with opportunistic locking and an allocator."""
    return {
        "__version__": 1,
        "mode": "create",
        "instance_name": name,
        "disk_template": "ext",
        "disks": [{"size": 64, "provider": "archipelago"}],
        "nics": [{"network": settings.NETWORK.name, "ip": "pool"}],
        "os_type": "snf-image+default",
        "osparams": {"img_id": "null", "img_passwd": SECRET},
        "hypervisor": "fake",
        "beparams": {"memory": 64 * 1024 * 1024},
        "iallocator": "hail",
        "opportunistic_locking": True,
        "name_check": False,
        "ip_check": False,
        "tags": ["conformance:failed"],
    }


def test_consumer_queues_sit_beside_the_dispatchers(lab):
    """snf-dispatcher's declarations (queues.py, dispatcher.py: durable topic exchanges
    `ganeti` and `ganeti-dl`, queues `snf-events-*` with x-ha-policy and a dead-letter
    exchange) and snf-events' on one broker, in both orders: no conflict, and a message
    published by a node reaches both consumers."""
    dispatcher = {
        f"snf-events-{kind}": key
        for kind, key in (
            ("op", "ganeti.snf.event.op"),
            ("network", "ganeti.snf.event.network"),
            ("progress", "ganeti.snf.event.progress"),
            ("cluster", "ganeti.event.cluster"),
        )
    }
    ganeti = kombu.Exchange(EXCHANGE, type="topic", durable=True, auto_delete=False)
    dead = kombu.Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True, auto_delete=False)
    upstream = [
        kombu.Queue(
            queue,
            exchange=ganeti,
            routing_key=key,
            durable=True,
            queue_arguments={"x-ha-policy": "all", "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE},
        )
        for queue, key in dispatcher.items()
    ] + [
        kombu.Queue(
            f"{queue}-dl",
            exchange=dead,
            routing_key=key,
            durable=True,
            queue_arguments={"x-ha-policy": "all"},
        )
        for queue, key in dispatcher.items()
    ]
    prefix = f"{topology.QUEUE_PREFIX}-beside-{uuid.uuid4().hex[:6]}"
    with lab.amqp_socket_factory():
        admin = kombu.Connection(lab.amqp_url)
        admin.connect()
        cloud = kombu.Connection(rabbit.cloud_url())
        cloud.connect()
    try:
        for order in ("dispatcher first", "snf-events first"):
            if order == "dispatcher first":
                for queue in upstream:
                    queue(admin.channel()).declare()
                ours = topology.declare(cloud.channel(), prefix)
            else:
                ours = topology.declare(cloud.channel(), prefix)
                for queue in upstream:
                    queue(admin.channel()).declare()
        name = snf_name()
        with lab.amqp_socket_factory(), Publisher([rabbit.node_url()]) as publisher:
            publisher.publish(
                "ganeti.snf.event.op", {"type": "ganeti-op-status", "instance": name}, name
            )
        op_queue = next(queue for queue in ours if queue.name.endswith("-op"))
        for queue in (upstream[0](admin.channel()), op_queue):
            deadline = time.monotonic() + 30
            message = queue.get(no_ack=True)
            while message is None and time.monotonic() < deadline:
                time.sleep(0.2)
                message = queue.get(no_ack=True)
            assert message is not None, f"{queue.name} got the message"
            assert json.loads(message.body)["instance"] == name
    finally:
        channel = admin.channel()
        for queue in upstream + topology.queues(prefix) + topology.dead_letter_queues(prefix):
            try:
                queue(channel).delete()
            except Exception:  # already gone
                channel = admin.channel()
        admin.release()
        cloud.release()
