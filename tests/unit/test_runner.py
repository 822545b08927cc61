import time

import pytest

from ganeti_ext import runner
from ganeti_ext.errors import CommandError


def test_output_and_exit_code():
    result = runner.run(["sh", "-c", "echo out; echo err >&2"], timeout=10)
    assert result.returncode == 0
    assert result.stdout_text == "out\n" and result.stderr_text == "err\n"


def test_input_is_fed_to_stdin():
    assert runner.run(["cat"], timeout=10, input=b"data").stdout == b"data"


def test_failure_raises_with_argv_code_and_stderr_tail():
    script = "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 3"
    with pytest.raises(CommandError) as failure:
        runner.run(["sh", "-c", script], timeout=10)
    err = failure.value
    assert err.returncode == 3
    assert err.stderr_tail == "line3 | line4 | line5 | line6 | line7"
    assert "exit code 3" in str(err) and "sh -c" in str(err)


def test_check_false_returns_the_failure():
    assert runner.run(["false"], timeout=10, check=False).returncode == 1


def test_missing_program():
    with pytest.raises(CommandError, match=r"cannot start"):
        runner.run(["/nonexistent/program"], timeout=10)


def test_timeout_kills_the_whole_process_group(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    with pytest.raises(CommandError) as failure:
        # The grandchild keeps stdout open: only killing the group ends the run.
        runner.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; sleep 30"], timeout=0.5)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild), "the grandchild went with its group"
    assert failure.value.timed_out
    assert "timed out after 0.5 s" in str(failure.value)


def test_environment_is_minimal_and_extendable(monkeypatch):
    monkeypatch.setenv("OSP_IMG_PASSWD", "secret")
    result = runner.run(["env"], timeout=10, env={"EXTRA": "1"})
    lines = set(result.stdout_text.splitlines())
    assert "EXTRA=1" in lines and "LC_ALL=C" in lines
    assert not any(line.startswith("OSP_") for line in lines)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
