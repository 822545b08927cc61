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

# Where rejected messages go, declared as upstream's dispatcher declares it (topic).
DEAD_LETTER_EXCHANGE = "ganeti-dl"
# snf-events' queues: not upstream's `<prefix>-events-*`, so both can share a broker.
CONSUMER_QUEUE_PREFIX = "ganeti-ext-events"

# RabbitMQ permissions (configure, write, read) of the node side's broker user: it may
# declare and publish to its exchange and nothing else, so a compromised node can neither
# read, purge nor delete the cloud layer's queues (docs/amqp-contract.md, "Permissions").
NODE_PERMISSIONS = (f"^{EXCHANGE}$", f"^{EXCHANGE}$", "^$")
# ... and the consumer's: its own queues (tail queues included) and the two exchanges
# to bind them to; it never publishes to `ganeti`. Write on the dead-letter exchange:
# RabbitMQ wants it to declare a queue that dead-letters there.
_CONSUMER_OWN = f"{CONSUMER_QUEUE_PREFIX}-.*"
CONSUMER_PERMISSIONS = (
    f"^({EXCHANGE}|{DEAD_LETTER_EXCHANGE}|{_CONSUMER_OWN})$",
    f"^({DEAD_LETTER_EXCHANGE}|{_CONSUMER_OWN})$",
    f"^({EXCHANGE}|{DEAD_LETTER_EXCHANGE}|{_CONSUMER_OWN})$",
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
