"""Decoding and checking incoming update-path messages: what to apply, what to dead-letter.

`decode` turns the raw bytes of one AMQP delivery into an `Incoming` or raises `Rejected`
with a reason; the consume loop dead-letters a rejected message (never drops it
silently). Checks, in order: size, UTF-8 JSON object, known `type`, the JSON schema of
that type (ganeti_ext/events/schemas), the fields this consumer relies on, and a
routing key that matches the type and name (a message on the wrong key is a bug
upstream, and applying it could hide that).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganeti_ext.amqp import routing
from ganeti_ext.errors import ValidationError
from ganeti_ext.events.jobfile import STATUSES as JOB_STATUSES
from ganeti_ext.hooks.notify import MESSAGE_TYPE as HOOK
from ganeti_ext.hooks.notify import hook_routing_key
from ganeti_ext.logsetup import mask_text

log = logging.getLogger(__name__)

KNOWN_TYPES = (
    routing.OP_STATUS,
    routing.NETWORK_STATUS,
    routing.CLUSTER_STATUS,
    routing.HEARTBEAT,
    *routing.IMAGE_TYPES,
    HOOK,
)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
SCHEMA_DIR = Path(__file__).resolve().parent.parent / "events" / "schemas"
_REASON_LIMIT = 300

EventTime = tuple[int, int]


class Rejected(Exception):
    """A message this consumer cannot apply; it goes to the dead-letter queue."""

    def __init__(self, reason: str) -> None:
        self.reason = mask_text(reason)[:_REASON_LIMIT]
        super().__init__(self.reason)


@dataclass(frozen=True)
class Incoming:
    """One checked message, ready for the state database."""

    message_id: str
    routing_key: str
    type: str
    body: Mapping[str, Any]
    event_time: EventTime | None
    subject: str | None  # the instance, network or cluster the message is about


def expected_routing_key(message_type: str, subject: str | None) -> str:
    if message_type == HOOK:
        if not subject:
            raise ValidationError("a ganeti-hook message needs an instance or network name")
        return hook_routing_key(subject)
    return routing.routing_key_for(message_type, subject)


def parse_event_time(value: object) -> EventTime:
    """[seconds, microseconds] as Ganeti timestamps are; raises Rejected otherwise."""
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and value[0] >= 0
        and 0 <= value[1] < 1_000_000
    ):
        return (value[0], value[1])
    raise Rejected(f"event_time must be [seconds, microseconds], got {value!r}")


def subject_of(body: Mapping[str, Any]) -> str | None:
    """The name a message is about: instance, network or cluster."""
    message_type = body.get("type")
    if message_type in (routing.CLUSTER_STATUS, routing.HEARTBEAT):
        key = "cluster"
    elif message_type == routing.NETWORK_STATUS or (
        message_type == HOOK and body.get("network") and not body.get("instance")
    ):
        key = "network"
    else:
        key = "instance"
    value = body.get(key)
    return value if isinstance(value, str) and value else None


class SchemaValidator:
    """Validates bodies against the repository's JSON schemas, found by their `type`."""

    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        import jsonschema  # Debian's python3-jsonschema

        self._validators = {}
        for message_type, schema in schemas.items():
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self._validators[message_type] = cls(schema)

    @classmethod
    def from_directory(cls, directory: Path = SCHEMA_DIR) -> SchemaValidator:
        """The repository's schemas, loosened to what upstream Cyclades accepts."""
        return cls(
            {kind: liberal(kind, schema) for kind, schema in load_schemas(directory).items()}
        )

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._validators))

    def validate(self, message_type: str, body: Mapping[str, Any]) -> None:
        validator = self._validators.get(message_type)
        if validator is None:
            return  # no schema for this type: the structural checks below still apply
        import jsonschema.exceptions

        error = jsonschema.exceptions.best_match(validator.iter_errors(body))
        if error is not None:
            where = "/".join(str(part) for part in error.path) or "(message)"
            raise Rejected(f"schema {message_type}: {where}: {error.message}")


# What upstream Cyclades needs of each type (docs/amqp-contract.md, "What a consumer
# must accept"); the producer's schemas are stricter, and a consumer that held others
# to them would reject genuine upstream traffic (NICs without `firewall`, progress
# events with snf-image's `timestamp`, a cluster status with `logmsg`).
UPSTREAM_REQUIRED: Mapping[str, tuple[str, ...]] = {
    routing.OP_STATUS: ("type", "instance", "operation", "status", "jobId", "event_time"),
    routing.NETWORK_STATUS: ("type", "network", "operation", "status", "jobId", "event_time"),
    routing.CLUSTER_STATUS: ("type", "cluster", "operation"),
    routing.HEARTBEAT: ("type", "cluster"),
    "image-copy-progress": ("type", "instance", "event_time", "progress"),
    **{kind: ("type", "instance", "event_time") for kind in routing.IMAGE_TYPES[1:]},
}
# Inside a message: only a disk's size is needed (Cyclades reads it for quotas).
NESTED_REQUIRED: Mapping[str, tuple[str, ...]] = {"instance_disks": ("size",)}


def liberal(message_type: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` accepting what upstream accepts: extra fields anywhere, and only the
    fields upstream reads required (ganeti-hook, ours alone, keeps its own)."""
    loose = _loosen(schema, None)
    if message_type in UPSTREAM_REQUIRED:
        loose["required"] = [key for key in UPSTREAM_REQUIRED[message_type]]
        for keyword in ("anyOf", "oneOf"):
            loose.pop(keyword, None)  # "messages or stderr": upstream takes neither too
    return loose


def _loosen(node: Any, owner: str | None) -> Any:
    if isinstance(node, list):
        return [_loosen(item, owner) for item in node]
    if not isinstance(node, dict):
        return node
    loose = {}
    for key, value in node.items():
        if key == "additionalProperties" and value is False:
            continue
        if key == "properties" and isinstance(value, dict):
            loose[key] = {name: _loosen(sub, name) for name, sub in value.items()}
        elif key == "required" and owner is not None:
            loose[key] = [name for name in value if name in NESTED_REQUIRED.get(owner, ())]
        else:
            loose[key] = _loosen(value, owner)
    return loose


def load_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """Message type -> schema, for every *.json in `directory` that names its type.

    A schema names its type with properties.type.const (or a one-value enum); of several
    versions of one type the file that sorts last (e.g. .v2 after .v1) wins.
    """
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else ():
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable schema %s: %s", path, err)
            continue
        for message_type in _schema_types(schema):
            found[message_type] = schema
    return found


def _schema_types(schema: object) -> Iterable[str]:
    if not isinstance(schema, dict):
        return ()
    type_spec = schema.get("properties", {}).get("type", {})
    if not isinstance(type_spec, dict):
        return ()
    if isinstance(type_spec.get("const"), str):
        return (type_spec["const"],)
    enum = type_spec.get("enum")
    if isinstance(enum, list) and all(isinstance(item, str) for item in enum):
        return tuple(enum)
    return ()


def decode(
    raw: bytes,
    *,
    routing_key: str,
    message_id: str | None,
    validator: SchemaValidator | None = None,
) -> Incoming:
    """Check one delivery; raises Rejected (with a log-safe reason) when it cannot apply."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Rejected(f"message larger than {MAX_MESSAGE_BYTES} bytes")
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise Rejected("not UTF-8") from None
    except ValueError as err:
        raise Rejected(f"not JSON: {err}") from None
    if not isinstance(body, dict):
        raise Rejected(f"not a JSON object but {type(body).__name__}")
    message_type = body.get("type")
    if message_type not in KNOWN_TYPES:
        raise Rejected(f"unknown message type {message_type!r}")
    if validator is not None:
        validator.validate(message_type, body)
    _check_fields(message_type, body)
    subject = subject_of(body)
    try:
        expected = expected_routing_key(message_type, subject)
    except ValidationError as err:
        raise Rejected(str(err)) from None
    if routing_key != expected:
        raise Rejected(
            f"{message_type} about {subject!r} arrived on {routing_key!r}, not {expected!r}"
        )
    event_time = parse_event_time(body["event_time"]) if "event_time" in body else None
    if not message_id:
        # Publishers set message_id; without one, identical bytes are the same message.
        message_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Incoming(
        message_id=message_id,
        routing_key=routing_key,
        type=message_type,
        body=body,
        event_time=event_time,
        subject=subject,
    )


def _need_str(body: Mapping[str, Any], key: str) -> None:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise Rejected(f"{body.get('type')}: {key} must be a non-empty string")


def _check_fields(message_type: str, body: Mapping[str, Any]) -> None:
    """The fields this consumer reads, whatever the schema allows besides."""
    if message_type in (routing.OP_STATUS, routing.NETWORK_STATUS):
        _need_str(body, "instance" if message_type == routing.OP_STATUS else "network")
        _need_str(body, "operation")
        if body.get("status") not in JOB_STATUSES:
            raise Rejected(f"{message_type}: unknown job status {body.get('status')!r}")
        job_id = body.get("jobId")
        if isinstance(job_id, bool) or not isinstance(job_id, int | str) or job_id == "":
            raise Rejected(f"{message_type}: jobId must be a job number")
        if "event_time" not in body:
            raise Rejected(f"{message_type}: event_time is missing")
    elif message_type in (routing.CLUSTER_STATUS, routing.HEARTBEAT):
        _need_str(body, "cluster")
    elif message_type in routing.IMAGE_TYPES:
        _need_str(body, "instance")
        if "event_time" not in body:
            raise Rejected(f"{message_type}: event_time is missing")
    elif message_type == HOOK:
        _need_str(body, "hpath")
        _need_str(body, "operation")
        if not (isinstance(body.get("instance"), str) or isinstance(body.get("network"), str)):
            raise Rejected("ganeti-hook: needs an instance or a network")
        if "event_time" not in body:
            raise Rejected("ganeti-hook: event_time is missing")
    for key in ("instance_nics", "instance_disks"):
        if key in body and not isinstance(body[key], list):
            raise Rejected(f"{message_type}: {key} must be a list")
    if message_type == routing.OP_STATUS and "logmsg" not in body:
        raise Rejected(f"{message_type}: logmsg is missing (null is fine)")
    for key in ("job_fields", "instance_hvparams"):
        if key in body and body[key] is not None and not isinstance(body[key], dict):
            raise Rejected(f"{message_type}: {key} must be an object")
