"""Status changes: repeated statuses are not changes; each real change is one event."""

from __future__ import annotations

from unit_helpers import DATA

from ganeti_ext.events import transitions
from ganeti_ext.events.jobfile import read_job_file

JOBS = DATA / "jobs"
VERSIONS = [read_job_file(str(JOBS / f"instance-startup.{n}.json")) for n in range(1, 7)]


def replay(versions):
    """Feed successive versions of a job file as the daemon would; collect the changes."""
    recorded = None
    seen = []
    for job in versions:
        found = transitions.changes(recorded, job)
        seen += found
        recorded = job.statuses
    return seen


def test_each_status_once_although_the_file_was_written_six_times():
    assert [v.statuses[0] for v in VERSIONS] == [
        "queued",
        "queued",
        "queued",
        "waiting",
        "running",
        "success",
    ]
    assert replay(VERSIONS) == [(0, "queued"), (0, "waiting"), (0, "running"), (0, "success")]


def test_rereading_the_same_version_gives_nothing():
    assert replay([VERSIONS[5], VERSIONS[5], VERSIONS[5]]) == [(0, "success")]


def test_after_a_restart_only_the_missed_final_status():
    assert transitions.changes(("running",), VERSIONS[5]) == [(0, "success")]
    assert transitions.changes(None, VERSIONS[5]) == [(0, "success")]
    assert transitions.changes(("success",), VERSIONS[5]) == []


def test_event_time_is_the_jobs_own_time_for_each_status():
    job = VERSIONS[5]
    op = job.ops[0]
    assert transitions.event_time(job, op, "queued") == job.received_timestamp
    assert transitions.event_time(job, op, "waiting") == op.start_timestamp
    assert transitions.event_time(job, op, "running") == op.exec_timestamp
    assert transitions.event_time(job, op, "success") == op.end_timestamp
    assert transitions.event_time(job, op, "error") == op.end_timestamp


def test_event_time_falls_back_to_earlier_timestamps():
    job = VERSIONS[3]  # waiting: no exec or end timestamp yet
    op = job.ops[0]
    assert transitions.event_time(job, op, "running") == op.start_timestamp
    assert transitions.event_time(job, op, "canceled") == op.start_timestamp
