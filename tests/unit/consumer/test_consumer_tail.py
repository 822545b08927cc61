import json
import time

import pytest
from consumer_helpers import hook, op, progress

from ganeti_ext.consumer import tail

WHEN = time.mktime((2026, 11, 21, 6, 0, 0, 0, 0, -1))


def line(body, **kwargs):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return tail.format_line(raw, "ganeti.snf.event.op", WHEN, as_json=False, **kwargs)


def test_op_status_line():
    text = line(op(t=(int(WHEN), 123000), logmsg="Instance created\nsecond line"))
    assert text == (
        "2026-11-21 06:00:00.123 ganeti-op-status snf-1 OP_INSTANCE_CREATE success job=7 "
        "Instance created second line"
    )


def test_progress_and_hook_lines():
    assert "image-copy-progress snf-1 42.5%" in line(progress(progress=42.5))
    text = line(hook(status="up"))
    assert "ganeti-hook snf-1 instance-modify OP_INSTANCE_SET_PARAMS status=up" in text


def test_unparsable_is_shown_not_hidden():
    assert "UNPARSABLE on ganeti.snf.event.op: {oops" in line(b"{oops")


def test_secrets_are_masked():
    text = line(op(logmsg="failed with img_passwd=hunter2"))
    assert "hunter2" not in text and "img_passwd=***" in text


def test_json_mode():
    out = tail.format_line(json.dumps(op()).encode(), "k", WHEN, as_json=True)
    assert json.loads(out)["instance"] == "snf-1"


@pytest.mark.parametrize(
    "types, expected",
    [((), True), (("ganeti-op-status",), True), (("image-info",), False)],
)
def test_type_filter(types, expected):
    assert tail.wanted(json.dumps(op()), types) is expected
