"""Routing keys of the messages a Synnefo-style cloud layer consumes (docs/amqp-contract.md).

| type                          | routing key                  |
| ganeti-op-status              | ganeti.<prefix>.event.op      |
| ganeti-network-status         | ganeti.<prefix>.event.network |
| ganeti-cluster-status         | ganeti.event.cluster          |
| eventd-heartbeat              | eventd.heartbeat              |
| image-* (progress, info, ...) | ganeti.<prefix>.event.progress|
"""

from __future__ import annotations

from ganeti_ext.errors import ValidationError

EXCHANGE = "ganeti"
EXCHANGE_TYPE = "topic"

OP_STATUS = "ganeti-op-status"
NETWORK_STATUS = "ganeti-network-status"
CLUSTER_STATUS = "ganeti-cluster-status"
HEARTBEAT = "eventd-heartbeat"
IMAGE_TYPES = (
    "image-copy-progress",
    "image-info",
    "image-warning",
    "image-error",
    "image-helper",
)

CLUSTER_ROUTING_KEY = "ganeti.event.cluster"
HEARTBEAT_ROUTING_KEY = "eventd.heartbeat"


def prefix_of(name: str) -> str:
    """The instance or network name up to its first '-' ("snf-42" -> "snf").

    A name without '-' is its own prefix, as upstream did.
    """
    prefix = name.split("-", 1)[0]
    if not prefix:
        raise ValidationError(f"cannot derive a routing prefix from name {name!r}")
    if any(char in prefix for char in "*# \t\n"):
        # These would turn the key into a topic pattern or split it.
        raise ValidationError(f"name {name!r} has characters not allowed in a routing key")
    return prefix


def op_routing_key(instance: str) -> str:
    return f"ganeti.{prefix_of(instance)}.event.op"


def network_routing_key(network: str) -> str:
    return f"ganeti.{prefix_of(network)}.event.network"


def progress_routing_key(instance: str) -> str:
    return f"ganeti.{prefix_of(instance)}.event.progress"


def routing_key_for(message_type: str, name: str | None = None) -> str:
    """The routing key of a message of `message_type` about instance/network `name`."""
    if message_type == CLUSTER_STATUS:
        return CLUSTER_ROUTING_KEY
    if message_type == HEARTBEAT:
        return HEARTBEAT_ROUTING_KEY
    builders = {OP_STATUS: op_routing_key, NETWORK_STATUS: network_routing_key}
    builders.update({image_type: progress_routing_key for image_type in IMAGE_TYPES})
    if message_type not in builders:
        raise ValidationError(f"unknown message type {message_type!r}")
    if not name:
        raise ValidationError(f"a {message_type} message needs an instance or network name")
    return builders[message_type](name)
