import json

import pytest
from consumer_helpers import hook, network, op, progress, routing_key_of

from ganeti_ext.consumer import messages


@pytest.fixture(scope="module")
def validator():
    return messages.SchemaValidator.from_directory()


def decode(body, *, routing_key=None, message_id="m1", validator=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    if routing_key is None:
        routing_key = routing_key_of(body)
    return messages.decode(raw, routing_key=routing_key, message_id=message_id, validator=validator)


def test_validator_knows_the_published_types(validator):
    assert {"ganeti-op-status", "ganeti-network-status", "ganeti-hook"} <= set(validator.types)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(op(), id="op-status"),
        pytest.param(network(), id="network-status"),
        pytest.param(hook(nics=[]), id="hook"),
        pytest.param(progress(progress=12.5), id="progress"),
        pytest.param({"type": "eventd-heartbeat", "cluster": "c"}, id="heartbeat"),
    ],
)
def test_good_messages_decode(body, validator):
    message = decode(body, validator=validator)
    assert message.type == body["type"] and message.message_id == "m1"


def test_event_time_and_subject():
    message = decode(op(instance="snf-9", t=(5, 7)))
    assert message.event_time == (5, 7) and message.subject == "snf-9"


def test_missing_message_id_falls_back_to_a_content_hash():
    first = decode(op(), message_id=None)
    again = decode(op(), message_id=None)
    assert first.message_id.startswith("sha256:") and first.message_id == again.message_id


@pytest.mark.parametrize(
    "raw, reason",
    [
        pytest.param(b"\xff\xfe", "not UTF-8", id="binary"),
        pytest.param(b'{"type": "ganeti-op-status"', "not JSON", id="truncated"),
        pytest.param(b"[1, 2]", "not a JSON object", id="list"),
        pytest.param(b'{"type": "surprise"}', "unknown message type", id="unknown-type"),
        pytest.param(b"{}", "unknown message type", id="no-type"),
    ],
)
def test_unparsable_is_rejected(raw, reason):
    with pytest.raises(messages.Rejected) as excinfo:
        messages.decode(raw, routing_key="ganeti.snf.event.op", message_id="x")
    assert reason in excinfo.value.reason


@pytest.mark.parametrize(
    "changes, reason",
    [
        pytest.param({"status": "exploded"}, "status", id="bad-status"),
        pytest.param({"event_time": [1]}, "event_time", id="short-time"),
        pytest.param({"event_time": "yesterday"}, "event_time", id="text-time"),
        pytest.param({"jobId": "seven"}, "jobId", id="text-job-id"),
        pytest.param({"instance": ""}, "instance", id="no-instance"),
        pytest.param({"instance_nics": {"a": 1}}, "instance_nics", id="nics-not-list"),
        pytest.param({"logmsg": None, "jobId": []}, "jobId", id="list-job-id"),
    ],
)
def test_invalid_is_rejected_by_the_schema(changes, reason, validator):
    body = op()
    body.update(changes)
    with pytest.raises(messages.Rejected) as excinfo:
        decode(body, routing_key="ganeti.snf.event.op", validator=validator)
    assert reason in excinfo.value.reason


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"status": "exploded"}, id="bad-status"),
        pytest.param({"event_time": [1, 2_000_000]}, id="usec-overflow"),
        pytest.param({"event_time": [True, 0]}, id="bool-time"),
        pytest.param({"jobId": None}, id="no-job-id"),
        pytest.param({"operation": 5}, id="operation-not-text"),
    ],
)
def test_invalid_is_rejected_without_schemas_too(changes):
    body = op()
    body.update(changes)
    with pytest.raises(messages.Rejected):
        decode(body, routing_key="ganeti.snf.event.op")


# Genuine upstream-shaped traffic (snf-cyclades-gtools eventd, snf-image's monitor).
@pytest.mark.parametrize(
    "body, key",
    [
        pytest.param(
            op(surprise=1, instance_nics=[{"network": "snf-net-1", "ip": None, "mac": "aa"}]),
            "ganeti.snf.event.op",
            id="op-extra-field-nic-without-firewall",
        ),
        pytest.param(
            {**network(), "result": None, "job_fields": {"subnet": "198.51.100.0/24"}},
            "ganeti.snf.event.network",
            id="network-with-result",
        ),
        pytest.param(
            {
                "type": "ganeti-cluster-status",
                "cluster": "c1",
                "operation": "OP_CLUSTER_SET_PARAMS",
                "status": "success",
                "jobId": 3,
                "event_time": [1, 0],
                "logmsg": None,
                "result": None,
            },
            "ganeti.event.cluster",
            id="cluster-with-logmsg-result",
        ),
        pytest.param(
            {**progress(progress=5.0), "timestamp": 1700000000.5},
            "ganeti.snf.event.progress",
            id="timestamp",
        ),
        pytest.param(
            {"type": "image-warning", "instance": "snf-1", "event_time": [1, 0], "messages": ["w"]},
            "ganeti.snf.event.progress",
            id="image-warning",
        ),
    ],
)
def test_upstream_shaped_messages_are_accepted(body, key, validator):
    assert decode(body, routing_key=key, validator=validator).type == body["type"]


@pytest.mark.parametrize("missing", ["instance", "operation", "jobId", "event_time", "logmsg"])
def test_missing_required_field_is_rejected_with_its_name(missing, validator):
    body = op()
    body.pop(missing)
    with pytest.raises(messages.Rejected) as excinfo:
        decode(body, routing_key="ganeti.snf.event.op", validator=validator)
    assert missing in excinfo.value.reason


def test_wrong_routing_key_is_rejected():
    with pytest.raises(messages.Rejected) as excinfo:
        decode(op(instance="snf-1"), routing_key="ganeti.other.event.op")
    assert "ganeti.snf.event.op" in excinfo.value.reason


def test_rejection_reasons_mask_secrets():
    body = op(img_passwd="hunter2")
    with pytest.raises(messages.Rejected) as excinfo:
        decode(json.dumps(body).encode().replace(b"}", b"", 1), routing_key="k")
    assert "hunter2" not in excinfo.value.reason


def test_oversized_message_is_rejected():
    with pytest.raises(messages.Rejected):
        messages.decode(b" " * (messages.MAX_MESSAGE_BYTES + 1), routing_key="k", message_id="x")


def test_schemas_found_by_their_type_const(tmp_path):
    (tmp_path / "a.v1.json").write_text(json.dumps({"properties": {"type": {"const": "x"}}}))
    (tmp_path / "b.v1.json").write_text("not json")
    (tmp_path / "c.v1.json").write_text(json.dumps({"properties": {"type": {"enum": ["y", "z"]}}}))
    assert set(messages.load_schemas(tmp_path)) == {"x", "y", "z"}
