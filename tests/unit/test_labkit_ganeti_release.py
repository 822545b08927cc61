"""The lab's knowledge of Ganeti 3.0 versus 3.1 (pure parts)."""

from __future__ import annotations

import subprocess

import pytest

from labkit import ganeti_release

# How Ganeti 3.1.0~rc2 reports the QMP bug (ganeti/ganeti#1854 and #1865).
EAGAIN = (
    "Job 51 for test.vm has failed: Failure: command execution error:\n"
    "Could not shutdown instance 'test.vm': Error while executing backend function: "
    "[Errno 11] Resource temporarily unavailable\n"
)
EPIPE = (
    "Could not shutdown instance 'x': Error while executing backend function: "
    "[Errno 32] Broken pipe\n"
)
OTHER = "Failure: prerequisites not met for this operation:\nInstance 'x' is not known\n"


@pytest.mark.parametrize(
    ("version", "expected"),
    [("3.0.2-3", (3, 0)), ("3.1.0~rc2-4", (3, 1)), ("1:3.1.1-1", (3, 1)), ("2.16.2-1", (2, 16))],
)
def test_version_tuple(version, expected):
    assert ganeti_release.version_tuple(version) == expected


def test_a_version_that_is_none_is_refused():
    with pytest.raises(ValueError, match="not a Ganeti version"):
        ganeti_release.version_tuple("unknown")


def test_hotplug_is_an_option_on_3_0_and_the_default_on_3_1():
    assert ganeti_release.hotplug_flags((3, 0)) == ["--hotplug"]
    assert ganeti_release.hotplug_flags((3, 1)) == []


def test_backup_export_is_known_broken_only_in_3_1_release_candidates():
    assert ganeti_release.backup_export_works("3.0.2-3")
    assert not ganeti_release.backup_export_works("3.1.0~rc2-3")
    assert ganeti_release.backup_export_works("3.1.0-1")


def test_userspace_file_access_is_a_3_0_thing():
    assert ganeti_release.userspace_file_access_works((3, 0))
    assert not ganeti_release.userspace_file_access_works((3, 1))


def test_rename_forces_past_the_name_check_on_3_0_only():
    assert "--force" in ganeti_release.rename_flags((3, 0))
    assert ganeti_release.rename_flags((3, 1)) == []


@pytest.mark.parametrize(
    ("argv", "returncode", "output", "expected"),
    [
        (["gnt-instance", "shutdown", "x"], 1, EAGAIN, True),
        (["gnt-instance", "remove", "-f", "x"], 1, EPIPE, True),
        (["gnt-instance", "reboot", "x"], 1, EAGAIN, True),
        (["gnt-instance", "shutdown", "x"], 1, OTHER, False),  # a real failure
        (["gnt-instance", "shutdown", "x"], 0, EAGAIN, False),  # it went through
        (["gnt-instance", "modify", "x"], 1, EAGAIN, False),  # not a stop
        (["gnt-cluster", "verify"], 1, EPIPE, False),
    ],
)
def test_only_a_stop_failing_with_the_qmp_bug_is_one(argv, returncode, output, expected):
    assert ganeti_release.is_qmp_stop_failure(argv, returncode, output) is expected


def attempts(*results):
    """An attempt that returns `results` in turn, and the list of calls made."""
    calls = []

    def attempt():
        calls.append(len(calls))
        code, err = results[len(calls) - 1]
        return subprocess.CompletedProcess(["gnt-instance"], code, "", err)

    return attempt, calls


def test_a_stop_hit_by_the_qmp_bug_is_run_again_until_it_goes_through():
    attempt, calls = attempts((1, EAGAIN), (1, EPIPE), (0, ""))
    proc = ganeti_release.stop_retried(["gnt-instance", "shutdown", "x"], attempt)
    assert proc.returncode == 0 and len(calls) == 3


def test_retries_are_bounded_and_the_last_failure_is_returned():
    attempt, calls = attempts((1, EAGAIN), (1, EAGAIN), (1, EAGAIN), (0, ""))
    proc = ganeti_release.stop_retried(["gnt-instance", "shutdown", "x"], attempt)
    assert proc.returncode == 1 and len(calls) == ganeti_release.STOP_ATTEMPTS


def test_any_other_failure_is_returned_at_once():
    attempt, calls = attempts((1, OTHER), (0, ""))
    proc = ganeti_release.stop_retried(["gnt-instance", "shutdown", "x"], attempt)
    assert proc.returncode == 1 and len(calls) == 1
