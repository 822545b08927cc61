"""Exception types for failures a user can act on (bad config, bad environment, failed command).

Anything raised as a GanetiExtError is an *expected* failure: the command-line wrapper
(ganeti_ext.cli.run_main) prints its message on one line and exits with `exit_code`,
without a traceback. Any other exception is a bug.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike


class GanetiExtError(Exception):
    """An expected failure; the message must say what is wrong and where."""

    exit_code: int = 1


class ValidationError(GanetiExtError):
    """A request is well-formed but not acceptable (bad parameter, unsupported feature)."""


class ConfigError(GanetiExtError):
    """A configuration file is unreadable or holds an invalid value."""

    def __init__(
        self,
        file: str | PathLike[str],
        message: str,
        section: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = str(file)
        self.section = section
        self.key = key
        self.message = message
        where = self.file
        if section is not None:
            where += f": [{section}]"
            if key is not None:
                where += f" {key}"
        super().__init__(f"{where}: {message}")


class EnvError(GanetiExtError):
    """An environment variable handed to us (by Ganeti) is missing or invalid."""

    def __init__(self, variable: str, message: str) -> None:
        self.variable = variable
        self.message = message
        super().__init__(f"{variable}: {message}")


class CommandError(GanetiExtError):
    """An external command failed, could not be started, or timed out."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr_tail: str = "",
        timed_out: bool = False,
        timeout: float | None = None,
        reason: str | None = None,
    ) -> None:
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        self.timed_out = timed_out
        self.timeout = timeout
        if reason is None:
            if timed_out:
                reason = f"timed out after {timeout:g} s"
            else:
                reason = f"exit code {returncode}"
        message = f"command {' '.join(self.argv)!r} failed: {reason}"
        if stderr_tail:
            message += f": {stderr_tail}"
        super().__init__(message)
