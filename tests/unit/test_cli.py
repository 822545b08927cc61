import logging
import subprocess
import sys

import pytest
from unit_helpers import REPO

from ganeti_ext import cli, logsetup
from ganeti_ext.errors import CommandError, ConfigError, EnvError, GanetiExtError


def run(func, capsys, argv=()):
    with pytest.raises(SystemExit) as exited:
        cli.run_main(func, "prog", list(argv))
    captured = capsys.readouterr()
    return exited.value.code, captured.out, captured.err


def test_success_returns_the_function_exit_code(capsys):
    assert run(lambda args: None, capsys)[0] == 0
    assert run(lambda args: 3, capsys)[0] == 3


def test_arguments_are_passed(capsys):
    seen = []
    run(seen.append, capsys, ["a", "b"])
    assert seen == [["a", "b"]]


def test_expected_failure_is_one_line_with_its_exit_code(capsys):
    class Special(GanetiExtError):
        exit_code = 4

    def fail(args):
        raise Special("volume x does not exist")

    code, _, err = run(fail, capsys)
    assert code == 4
    assert err == "prog: error: volume x does not exist\n"


def test_keyboard_interrupt_exits_130(capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    code, _, err = run(interrupted, capsys)
    assert code == 130 and "interrupted" in err


def test_unexpected_exception_is_a_bug_exit_1_with_traceback_logged(capsys, caplog):
    def buggy(args):
        raise ZeroDivisionError("boom")

    with caplog.at_level(logging.ERROR):
        code, _, err = run(buggy, capsys)
    assert code == 1
    assert "internal error: ZeroDivisionError: boom" in err
    assert any(record.exc_info for record in caplog.records)


def test_errors_name_what_is_wrong():
    assert str(EnvError("VOL_SIZE", "must be an integer")) == "VOL_SIZE: must be an integer"
    assert str(ConfigError("/etc/x.conf", "bad", "store", "path")) == (
        "/etc/x.conf: [store] path: bad"
    )
    assert str(ConfigError("/etc/x.conf", "cannot read")) == "/etc/x.conf: cannot read"
    timed_out = CommandError(["sleep", "9"], None, timed_out=True, timeout=2)
    assert "'sleep 9'" in str(timed_out) and "timed out after 2 s" in str(timed_out)
    failed = CommandError(["false"], 1, "oops")
    assert str(failed) == "command 'false' failed: exit code 1: oops"


def test_broken_pipe_exits_quietly(tmp_path):
    script = (
        "from ganeti_ext import cli\n"
        "def main(args):\n"
        "    for _ in range(100000):\n"
        "        print('line')\n"
        "cli.run_main(main, 'prog')\n"
    )
    proc = subprocess.run(
        f'{sys.executable} -c "{script}" | head -1',
        shell=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout == "line\n"
    assert "Traceback" not in proc.stderr


def test_error_is_not_printed_twice_when_logging_to_stderr(capsys, clean_logging):
    logsetup.setup_logging("prog", "stderr")

    def fail(args):
        raise GanetiExtError("once")

    _, _, err = run(fail, capsys)
    assert err.count("once") == 1
