"""A NIC's firewall profile, from its instance's tags: the one resolver.

The NIC script applies the profile this returns, and eventd and the hooks report the
same one to the cloud layer (docs/amqp-contract.md, `firewall` of a NIC), so what a
VM gets and what the cloud says it has cannot differ.

Tags are `<prefix><key>:<profile>` where key is the NIC's index, name or UUID and the
prefix is FIREWALL_TAG_PREFIX of /etc/default/snf-network. When several tags name the
same NIC the last one in sorted order wins (Ganeti keeps tags sorted; sorting here too
makes it so whoever passes them), so contradicting tags resolve the same way on every
node and in every message. Unknown profile names are ignored, as
upstream did.
"""

from __future__ import annotations

from collections.abc import Iterable

PROFILES = ("protected", "limited", "unprotected")
DEFAULT_TAG_PREFIX = "synnefo:network:"


def nic_keys(index: int | None, name: str | None, uuid: str | None) -> tuple[str, ...]:
    """The keys a tag may name one NIC by."""
    return tuple(key for key in (None if index is None else str(index), name, uuid) if key)


def profile_for(
    tags: Iterable[str], keys: Iterable[str], prefix: str = DEFAULT_TAG_PREFIX
) -> str | None:
    """The profile the tags give the NIC known by `keys` (None: no firewall rules)."""
    wanted = set(keys)
    chosen = None
    for tag in sorted(tags):
        if not tag.startswith(prefix):
            continue
        nic, sep, profile = tag[len(prefix) :].rpartition(":")
        if sep and nic in wanted and profile in PROFILES:
            chosen = profile
    return chosen
