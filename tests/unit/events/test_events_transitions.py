"""Status changes: repeated statuses are not changes; each real change is one event."""

from __future__ import annotations

import dataclasses
import itertools

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


# --- live watching: statuses skipped between two reads are dated from the file ----------


def replay_live(versions):
    recorded = None
    seen = []
    for job in versions:
        seen += transitions.changes(recorded, job, history=True)
        recorded = job.statuses
    return seen


FULL = [(0, "queued"), (0, "waiting"), (0, "running"), (0, "success")]


def with_op(job, **changes):
    return dataclasses.replace(job, ops=(dataclasses.replace(job.ops[0], **changes),))


def test_live_first_seen_as_success_gives_every_status_in_order():
    assert transitions.changes(None, VERSIONS[5], history=True) == FULL
    assert transitions.changes(("",), VERSIONS[5], history=True) == FULL


def test_live_seen_waiting_then_success_gives_running_then_success():
    assert transitions.changes(("waiting",), VERSIONS[5], history=True) == FULL[2:]
    assert transitions.changes(("queued",), VERSIONS[4], history=True) == [
        (0, "waiting"),
        (0, "running"),
    ]


def test_live_any_subset_of_the_versions_gives_the_same_sequence():
    for size in range(1, len(VERSIONS) + 1):
        for subset in itertools.combinations(VERSIONS, size):
            final = subset[-1].statuses[0]
            want = FULL[: [s for _, s in FULL].index(final) + 1]
            assert replay_live(subset) == want, [v.statuses for v in subset]


def test_live_repeated_files_give_nothing_new():
    assert replay_live([VERSIONS[5]] * 3) == FULL
    assert replay_live([VERSIONS[3], VERSIONS[3], VERSIONS[5], VERSIONS[5]]) == FULL


def test_live_infers_only_statuses_the_file_dates():
    success = VERSIONS[5]
    # Canceled while queued: never started, so no waiting or running.
    canceled = with_op(success, status="canceled", start_timestamp=None, exec_timestamp=None)
    assert transitions.changes(None, canceled, history=True) == [(0, "queued"), (0, "canceled")]
    # Failed while waiting for its locks: never executed.
    failed = with_op(success, status="error", exec_timestamp=None)
    assert transitions.changes(("queued",), failed, history=True) == [
        (0, "waiting"),
        (0, "error"),
    ]
    # Nothing is inferred between canceling and canceled, nor without a received time.
    assert transitions.changes(("canceling",), canceled, history=True) == [(0, "canceled")]
    undated = dataclasses.replace(success, received_timestamp=None)
    assert transitions.changes(None, undated, history=True) == FULL[1:]


def test_live_multi_opcode_job_gives_each_opcodes_history_in_op_order():
    template = VERSIONS[5]
    op = template.ops[0]
    job = dataclasses.replace(
        template,
        ops=(
            op,
            dataclasses.replace(op, index=1, status="running", end_timestamp=None),
            dataclasses.replace(
                op,
                index=2,
                status="queued",
                start_timestamp=None,
                exec_timestamp=None,
                end_timestamp=None,
            ),
        ),
    )
    assert transitions.changes(None, job, history=True) == [
        *FULL,
        (1, "queued"),
        (1, "waiting"),
        (1, "running"),
        (2, "queued"),
    ]
    assert transitions.changes(("success", "waiting", "queued"), job, history=True) == [
        (1, "running")
    ]
    # Start-up catch-up keeps its rule: only the current status of what changed.
    assert transitions.changes(None, job) == [(0, "success"), (1, "running"), (2, "queued")]
