"""The exchanges and queues snf-events declares (docs/amqp-contract.md, "Queues").

Four durable queues on the topic exchange `ganeti`, each with a dead-letter queue
`<queue>-dl` behind the exchange `ganeti-dl`: a message the consumer rejects
(basic_reject, requeue=False) lands there for an admin to inspect, never lost.

They sit beside a running upstream `snf-dispatcher` on the same broker: the queue names
(`ganeti-ext-events-*`) differ from the dispatcher's (`<prefix>-events-*`), and both
exchanges are declared exactly as the dispatcher declares them (durable topic
exchanges, no arguments), so whichever starts second declares them again without
conflict. Each consumer then gets its own copy of every message.
"""

from __future__ import annotations

from collections.abc import Mapping

import kombu

from ganeti_ext.amqp.routing import (
    CLUSTER_ROUTING_KEY,
    DEAD_LETTER_EXCHANGE,
    EXCHANGE,
    EXCHANGE_TYPE,
)
from ganeti_ext.amqp.routing import (
    CONSUMER_QUEUE_PREFIX as QUEUE_PREFIX,
)
from ganeti_ext.amqp.routing import HEARTBEAT_ROUTING_KEY as HEARTBEAT_KEY

# queue suffix -> routing keys bound to it. Hook notifications (ganeti.*.event.hook)
# are about instance operations, so they share the op queue and its ordering.
BINDINGS: Mapping[str, tuple[str, ...]] = {
    "op": ("ganeti.*.event.op", "ganeti.*.event.hook"),
    "network": ("ganeti.*.event.network",),
    "progress": ("ganeti.*.event.progress",),
    "cluster": (CLUSTER_ROUTING_KEY, HEARTBEAT_KEY),
}


def exchange() -> kombu.Exchange:
    return kombu.Exchange(EXCHANGE, type=EXCHANGE_TYPE, durable=True)


def dead_letter_exchange() -> kombu.Exchange:
    return kombu.Exchange(DEAD_LETTER_EXCHANGE, type="topic", durable=True)


def queue_name(suffix: str, prefix: str = QUEUE_PREFIX) -> str:
    return f"{prefix}-{suffix}"


def dead_letter_name(queue: str) -> str:
    return f"{queue}-dl"


def queues(prefix: str = QUEUE_PREFIX) -> list[kombu.Queue]:
    """The consumed queues, with their bindings and dead-letter arguments."""
    ganeti = exchange()
    result = []
    for suffix, keys in BINDINGS.items():
        name = queue_name(suffix, prefix)
        result.append(
            kombu.Queue(
                name,
                exchange=ganeti,
                bindings=[kombu.binding(ganeti, routing_key=key) for key in keys],
                durable=True,
                auto_delete=False,
                queue_arguments={
                    "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
                    "x-dead-letter-routing-key": dead_letter_name(name),
                },
            )
        )
    return result


def dead_letter_queues(prefix: str = QUEUE_PREFIX) -> list[kombu.Queue]:
    dl = dead_letter_exchange()
    return [
        kombu.Queue(
            dead_letter_name(queue_name(suffix, prefix)),
            exchange=dl,
            routing_key=dead_letter_name(queue_name(suffix, prefix)),
            durable=True,
            auto_delete=False,
        )
        for suffix in BINDINGS
    ]


def declare(channel: object, prefix: str = QUEUE_PREFIX) -> list[kombu.Queue]:
    """Declare everything (idempotent); returns the bound consumed queues."""
    for queue in dead_letter_queues(prefix):
        queue(channel).declare()
    bound = [queue(channel) for queue in queues(prefix)]
    for queue in bound:
        queue.declare()
    return bound


def tail_queue(name: str) -> kombu.Queue:
    """A private, throw-away queue seeing every message on the exchange (snf-events tail)."""
    return kombu.Queue(
        name,
        exchange=exchange(),
        routing_key="#",
        exclusive=True,
        auto_delete=True,
        durable=False,
    )
