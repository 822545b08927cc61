import json

import pytest

from ganeti_ext.progress import events

NOW = 1700000000.5


def parse(obj):
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return events.parse_line(raw, "snf-42", NOW)


@pytest.mark.parametrize(
    "given, expected",
    [
        pytest.param(
            {"type": "image-copy-progress", "position": 1048576, "total": 4194304},
            {"progress": 25.0, "position": 1048576, "total": 4194304},
            id="position-total",
        ),
        pytest.param(
            {"type": "image-copy-progress", "progress": 33.333333},
            {"progress": 33.33},
            id="progress-only",
        ),
        pytest.param(
            {"type": "image-copy-progress", "progress": 150},
            {"progress": 100.0},
            id="clamped",
        ),
        pytest.param(
            {"subtype": "task-start", "task": "FixPartitionTable"},
            {"type": "image-helper", "subtype": "task-start", "task": "FixPartitionTable"},
            id="helper-by-subtype",
        ),
        pytest.param(
            {"type": "image-helper", "subtype": "warning", "messages": ["low on space"]},
            {"subtype": "warning", "messages": ["low on space"]},
            id="helper-warning",
        ),
        pytest.param(
            {"type": "image-info", "messages": "Image size: 2 GiB"},
            {"messages": ["Image size: 2 GiB"]},
            id="info-single-message",
        ),
        pytest.param(
            {"type": "image-error", "stderr": "dd: error writing", "junk": {"a": 1}},
            {"stderr": "dd: error writing"},
            id="error-stderr-extra-dropped",
        ),
    ],
)
def test_normalised(given, expected):
    body = parse(given)
    assert body["instance"] == "snf-42" and body["event_time"] == [1700000000, 500000]
    assert body["type"] == expected.get("type", given.get("type", "image-helper"))
    for key, value in expected.items():
        assert body[key] == value
    assert set(body) <= {
        "type",
        "instance",
        "event_time",
        "progress",
        "position",
        "total",
        "messages",
        "stderr",
        "subtype",
        "task",
    }


def test_writer_cannot_choose_the_instance_or_time():
    body = parse(
        {"type": "image-info", "messages": ["x"], "instance": "snf-other", "event_time": [1, 0]}
    )
    assert body["instance"] == "snf-42" and body["event_time"][0] == 1700000000


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="binary"),
        pytest.param(b"[1,2]", id="list"),
        pytest.param(b'{"type":"image-copy-progress"}', id="copy-without-numbers"),
        pytest.param(b'{"type":"image-copy-progress","position":1,"total":0}', id="zero-total"),
        pytest.param(b'{"type":"image-copy-progress","progress":-1}', id="negative"),
        pytest.param(b'{"type":"image-copy-progress","progress":"half"}', id="text-progress"),
        pytest.param(b'{"type":"image-info"}', id="info-without-text"),
        pytest.param(b'{"subtype":"task-start"}', id="task-without-name"),
        pytest.param(b'{"subtype":"task-start","task":"rm -rf /"}', id="task-bad-name"),
        pytest.param(b'{"subtype":"party"}', id="unknown-subtype"),
        pytest.param(b'{"type":"image-delete-everything"}', id="unknown-type"),
        pytest.param(b'{"type":"image-info","messages":7}', id="messages-not-list"),
    ],
)
def test_malformed_is_skipped(raw):
    with pytest.raises(events.Skip):
        parse(raw)


def test_blank_line_is_nothing():
    assert parse(b"   ") is None


def test_secrets_are_masked():
    body = parse(
        {
            "type": "image-error",
            "messages": ["bad img_passwd=hunter2"],
            "stderr": "config_url=https://x/secret-token",
        }
    )
    assert "hunter2" not in json.dumps(body) and "secret-token" not in json.dumps(body)


def test_sizes_are_bounded():
    body = parse(
        {
            "type": "image-error",
            "messages": ["m" * 10_000] * 500,
            "stderr": "e" * 100_000 + "THE END",
        }
    )
    assert len(body["messages"]) == events.MAX_MESSAGES
    assert all(len(text) <= events.MAX_MESSAGE_CHARS for text in body["messages"])
    assert len(body["stderr"]) <= events.MAX_STDERR_CHARS and body["stderr"].endswith("THE END")
    assert len(json.dumps(body)) < events.MAX_BODY_BYTES


def test_to_message_routes_by_instance_prefix():
    message = events.to_message(parse({"type": "image-info", "messages": ["x"]}))
    assert message.routing_key == "ganeti.snf.event.progress"
    assert message.message_id.startswith("progress-")


def copy(progress):
    return {"type": events.COPY_PROGRESS, "progress": progress}


def test_throttle_sends_the_first_and_holds_the_rest():
    throttle = events.CopyProgressThrottle(interval=1.0)
    assert throttle.offer(copy(1), 10.0) == [copy(1)]
    assert throttle.offer(copy(2), 10.3) == []
    assert throttle.offer(copy(3), 10.6) == []
    assert throttle.due_in(10.6) == pytest.approx(0.4)
    assert throttle.poll(10.9) == []
    assert throttle.poll(11.0) == [copy(3)]  # the last one, not the first held
    assert throttle.due_in(11.0) is None


def test_throttle_lets_other_events_through_after_the_held_progress():
    throttle = events.CopyProgressThrottle(interval=1.0)
    throttle.offer(copy(1), 10.0)
    throttle.offer(copy(99), 10.1)
    info = {"type": events.INFO, "messages": ["done"]}
    assert throttle.offer(info, 10.2) == [copy(99), info]


def test_throttle_flushes_the_last_at_eof():
    throttle = events.CopyProgressThrottle(interval=1.0)
    throttle.offer(copy(1), 10.0)
    throttle.offer(copy(100), 10.1)
    assert throttle.flush() == [copy(100)] and throttle.flush() == []
