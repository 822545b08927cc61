"""Parsing Ganeti job files captured from the lab, and refusing everything else."""

from __future__ import annotations

import json

import pytest
from unit_helpers import DATA

from ganeti_ext.events.jobfile import JobFileError, job_id_from_name, parse_job, read_job_file

JOBS = DATA / "jobs"
CAPTURED = sorted(path.name for path in JOBS.glob("*.json") if path.name != "config.data.json")


@pytest.mark.parametrize("name", CAPTURED)
def test_every_captured_job_parses(name):
    job = read_job_file(str(JOBS / name))
    assert job.id > 0
    assert job.ops and all(op.op_id.startswith("OP_") for op in job.ops)
    assert job.received_timestamp is not None


def test_fields_of_a_finished_job():
    job = read_job_file(str(JOBS / "instance-startup.6.json"))
    op = job.ops[0]
    assert job.id == 33
    assert op.op_id == "OP_INSTANCE_STARTUP"
    assert op.status == "success" and op.finished and job.finished
    assert op.start_timestamp == (1795241373, 798719)
    assert op.exec_timestamp == (1795241373, 803554)
    assert op.end_timestamp == (1795241374, 22583)


def test_log_entries_and_error_results():
    job = read_job_file(str(JOBS / "instance-create-error.json"))
    op = job.ops[0]
    assert op.status == "error"
    assert op.result[0] == "OpPrereqError"
    network = read_job_file(str(JOBS / "network-add.json"))
    assert all(entry.kind == "message" for entry in network.ops[0].log)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("job-12", 12),
        ("job-0", 0),
        ("job-12-345-6.tmp", None),
        ("job-30msta8ob1.new", None),
        ("serial", None),
        ("job-", None),
        ("job-1x", None),
    ],
)
def test_job_id_from_name(name, expected):
    assert job_id_from_name(name) == expected


def _good() -> dict:
    return json.loads((JOBS / "instance-startup.6.json").read_text())


def _mutated(change) -> bytes:
    raw = _good()
    change(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        ((JOBS / "instance-startup.6.json").read_bytes()[:200], "not JSON"),
        (b"\xff\xfe\x00", "not UTF-8|not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"hello": "world"}', "job id"),
        (_mutated(lambda raw: raw.update(ops=[])), "no list of opcodes"),
        (_mutated(lambda raw: raw["ops"][0].update(status="exploded")), "unknown status"),
        (_mutated(lambda raw: raw["ops"][0]["input"].pop("OP_ID")), "OP_ID"),
        (_mutated(lambda raw: raw["ops"][0].update(start_timestamp="yesterday")), "timestamp"),
        (_mutated(lambda raw: raw["ops"][0].update(log=[[1, "x"]])), "log entry"),
    ],
    ids=[
        "empty",
        "truncated",
        "binary",
        "list",
        "foreign-json",
        "no-ops",
        "bad-status",
        "no-op-id",
        "bad-timestamp",
        "bad-log",
    ],
)
def test_malformed_files_are_job_file_errors(content, message):
    with pytest.raises(JobFileError, match=message):
        parse_job(content, where="queue/job-33")


def test_id_must_match_the_file_name():
    with pytest.raises(JobFileError, match="holds job 33, not 34"):
        parse_job((JOBS / "instance-startup.6.json").read_bytes(), expected_id=34)


def test_vanished_file(tmp_path):
    with pytest.raises(JobFileError, match="vanished"):
        read_job_file(str(tmp_path / "job-1"))


def test_string_ids_and_structured_log_messages_are_accepted():
    raw = _good()
    raw["id"] = "33"
    raw["ops"][0]["log"] = [[1, [1, 2], "remote-import", {"x": 1}]]
    job = parse_job(json.dumps(raw))
    assert job.id == 33
    assert job.ops[0].log[0].text == '{"x":1}'
