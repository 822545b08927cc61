"""Builders of update-path messages as eventd, the hooks and the progress monitor send them."""

from __future__ import annotations

import itertools
import json

from ganeti_ext.consumer import messages

_ids = itertools.count(1)


def op(instance="snf-1", operation="OP_INSTANCE_CREATE", status="success", t=100, job=7, **extra):
    body = {
        "type": "ganeti-op-status",
        "instance": instance,
        "operation": operation,
        "status": status,
        "jobId": job,
        "logmsg": extra.pop("logmsg", ""),
        "event_time": [t, 0] if isinstance(t, int) else list(t),
        "cluster": "cluster.ganeti.test",
        "result": None,
    }
    body.update(extra)
    return body


def network(name="snf-net-1", operation="OP_NETWORK_ADD", status="success", t=100, **extra):
    body = {
        "type": "ganeti-network-status",
        "network": name,
        "operation": operation,
        "status": status,
        "jobId": 9,
        "logmsg": "",
        "event_time": [t, 0],
        "cluster": "cluster.ganeti.test",
        "job_fields": {
            "subnet": "198.51.100.0/24",
            "gateway": "198.51.100.1",
            "add_reserved_ips": None,
            "remove_reserved_ips": None,
            "group_name": None,
        },
    }
    body.update(extra)
    return body


def progress(instance="snf-1", t=100, **fields):
    body = {"type": "image-copy-progress", "instance": instance, "event_time": [t, 0]}
    body.update(fields)
    return body


def hook(instance="snf-1", t=100, hpath="instance-modify", **extra):
    body = {
        "type": "ganeti-hook",
        "hpath": hpath,
        "phase": "post",
        "operation": "OP_INSTANCE_SET_PARAMS",
        "target": instance,
        "cluster": "cluster.ganeti.test",
        "event_time": [t, 0],
        "instance": instance,
    }
    body.update(extra)
    return body


def nic(ip="198.51.100.5", mac="aa:00:01:00:00:05", network="net1"):
    return {
        "name": None,
        "network": network,
        "ip": ip,
        "mac": mac,
        "mode": "bridged",
        "link": "br0",
        "uuid": "u-" + mac,
        "firewall": None,
    }


def routing_key_of(body):
    return messages.expected_routing_key(body["type"], messages.subject_of(body))


def incoming(body, message_id=None):
    """A decoded message, as the consume loop hands it to the state database."""
    return messages.decode(
        json.dumps(body).encode(),
        routing_key=routing_key_of(body),
        message_id=message_id or f"m{next(_ids)}",
    )
