"""The single place where the suite runs external commands.

Callers receive a `Runner` (the real `SubprocessRunner` by default) so that tests can
hand them a fake one and check the argv they build without running anything.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ganeti_ext.errors import CommandError

log = logging.getLogger(__name__)

# Children get a fixed, minimal environment: Ganeti hands our scripts secrets (OSP_*)
# and an unpredictable PATH, and the C locale keeps tool output parseable.
BASE_ENV: Mapping[str, str] = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C",
    "LANG": "C",
}
STDERR_TAIL_LINES = 5
KILL_GRACE = 5.0  # seconds to collect output after killing a timed-out command


@dataclass(frozen=True)
class CompletedCommand:
    """What a finished command produced."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")


class Runner(Protocol):
    """Anything that can run a command the way SubprocessRunner does."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> CompletedCommand: ...


def stderr_tail(stderr: bytes, lines: int = STDERR_TAIL_LINES) -> str:
    """The last non-empty lines of a command's stderr, joined for a one-line message."""
    text = stderr.decode("utf-8", errors="replace")
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


class SubprocessRunner:
    """Runs commands with subprocess, in their own process group, with a hard timeout."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> CompletedCommand:
        """Run `argv` (no shell) and return its result.

        `env` is added to BASE_ENV. Raises CommandError when the command cannot be
        started, times out (its whole process group is killed) or, with `check`, exits
        non-zero.
        """
        argv = tuple(argv)
        log.debug("running %s", " ".join(argv))
        child_env = {**BASE_ENV, **(env or {})}
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=child_env,
                start_new_session=True,  # own process group, so a timeout kills helpers too
                close_fds=True,
            )
        except OSError as err:
            raise CommandError(argv, None, reason=f"cannot start: {err.strerror}") from None
        try:
            stdout, stderr = proc.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            try:
                _, stderr = proc.communicate(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                # A descendant that left the process group still holds the pipes open.
                proc.wait()
                stderr = b""
            raise CommandError(
                argv, None, stderr_tail(stderr), timed_out=True, timeout=timeout
            ) from None
        except BaseException:
            _kill_group(proc)
            proc.wait()
            raise
        result = CompletedCommand(argv, proc.returncode, stdout, stderr)
        if check and proc.returncode != 0:
            raise CommandError(argv, proc.returncode, stderr_tail(stderr))
        return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


DEFAULT_RUNNER: Runner = SubprocessRunner()


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> CompletedCommand:
    """Run a command with the default runner (see SubprocessRunner.run)."""
    return DEFAULT_RUNNER.run(argv, timeout=timeout, input=input, env=env, check=check)


def spawn_detached(argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
    """Start `argv` in its own session and return at once, not waiting for it.

    Its standard streams are /dev/null, so whoever waits for our output (Ganeti reads
    an ExtStorage script's stdout to its end) does not wait for it too.
    """
    argv = tuple(argv)
    log.info("starting in the background: %s", " ".join(argv))
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**BASE_ENV, **_python_path(), **(env or {})},
            start_new_session=True,
            close_fds=True,
        )
    except OSError as err:
        raise CommandError(argv, None, reason=f"cannot start: {err.strerror}") from None


def _python_path() -> dict[str, str]:
    # A background helper of ours must import the same ganeti_ext as its parent (a
    # source tree under test, not only the installed package).
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": path} if path else {}
