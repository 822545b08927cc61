"""Logging set-up shared by every component: one target, reopen on SIGHUP, secrets masked.

Secrets (OS parameters such as img_passwd, broker passwords in URLs, ...) reach log
calls through messages, arguments, dict reprs and tracebacks. The masking filter works on
the fully formatted text, so it does not matter which of those carried the secret.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ganeti_ext.errors import GanetiExtError

MASK = "***"

# Parameter names whose values are secret. Matching is on substrings so that variants
# (OSP_IMG_PASSWD, img_passwd_hash, rabbit_password, api_token, ...) are covered too;
# over-masking a harmless value is the cheaper mistake.
_SECRET_NAME_PARTS = (
    "passw",
    "secret",
    "token",
    "auth_key",
    "authkey",
    "credential",
    "private_key",
    "config_url",
    "userdata",
    "personality",
)
_QUOTED = r"'(?:[^'\\]|\\.)*+'|\"(?:[^\"\\]|\\.)*+\""
# Any name=value, name: value, 'name': 'value', "name": "value" (reprs, JSON, env dumps);
# whether the name is secret is decided in Python. Atomic groups keep this linear on
# long tokens (base64 blobs), where a cleverer pattern backtracks quadratically.
_NAME_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>(?>['\"]?[A-Za-z0-9_.-]+['\"]?))"
    r"(?P<sep>\s*[=:]\s*)(?P<value>" + _QUOTED + r"|[^\s,;}\])]+)"
)
# scheme://user:password@host
_URL_PASSWORD = re.compile(
    r"(?<![a-zA-Z0-9+.-])(?P<head>[a-zA-Z](?>[a-zA-Z0-9+.-]*)://(?>[^:/@\s]*):)(?>[^@/\s]+)@"
)


def is_secret_name(name: str) -> bool:
    """Whether a parameter/variable name (any case, OSP_ prefix or not) holds a secret."""
    lowered = name.lower()
    return any(part in lowered for part in _SECRET_NAME_PARTS)


def mask_mapping(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `values` safe to log: secret entries replaced by a mask."""
    return {key: (MASK if is_secret_name(key) else value) for key, value in values.items()}


def redact_url(url: str) -> str:
    """The URL with any password replaced, e.g. amqp://user:***@host:5672//."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", url)


def mask_text(text: str) -> str:
    """Mask secret name/value pairs and URL passwords inside free text."""

    def pair(match: re.Match[str]) -> str:
        if not is_secret_name(match.group("name")):
            return match.group(0)
        value = match.group("value")
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{match.group('name')}{match.group('sep')}{quote}{MASK}{quote}"

    return redact_url(_NAME_VALUE.sub(pair, text))


class SecretMaskingFilter(logging.Filter):
    """Rewrites each record so that neither its message nor its traceback shows secrets."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = mask_text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


class ReopenableFileHandler(logging.FileHandler):
    """A file handler that reopens its file after logrotate, when asked (SIGHUP).

    The signal handler only sets a flag; the file is reopened by the next emit, under
    the handler's lock, so a signal arriving in the middle of a write is harmless.
    """

    def __init__(self, filename: str | Path) -> None:
        super().__init__(filename, mode="a", encoding="utf-8", delay=False)
        self._reopen_requested = False

    def request_reopen(self) -> None:
        self._reopen_requested = True

    def emit(self, record: logging.LogRecord) -> None:
        if self._reopen_requested:
            self._reopen_requested = False
            self.acquire()
            try:
                if self.stream is not None:
                    self.stream.close()
                self.stream = self._open()
            finally:
                self.release()
        super().emit(record)


_installed: list[logging.Handler] = []


def setup_logging(
    prog: str,
    target: str | Path,
    *,
    debug: bool = False,
    fallback_to_stderr: bool = False,
) -> logging.Logger:
    """Send the root logger's records to `target`: a file path, "syslog" or "stderr".

    Replaces whatever this function installed before (safe to call twice). When the log
    file cannot be opened and `fallback_to_stderr` is set, logs go to stderr instead
    (for short-lived scripts whose real job matters more than their log); otherwise that
    is a GanetiExtError. Returns the logger named `prog`.
    """
    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed.clear()

    target = str(target)
    problem = None
    handler: logging.Handler
    if target == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    elif target == "syslog":
        try:
            handler = logging.handlers.SysLogHandler(address="/dev/log")
        except OSError as err:
            problem = f"cannot reach syslog at /dev/log: {err.strerror}"
            handler = logging.StreamHandler(sys.stderr)
    else:
        try:
            handler = ReopenableFileHandler(target)
        except OSError as err:
            problem = f"cannot open log file {target}: {err.strerror}"
            if not fallback_to_stderr:
                raise GanetiExtError(problem) from None
            handler = logging.StreamHandler(sys.stderr)

    # syslog stamps time and host itself.
    stamp = "" if isinstance(handler, logging.handlers.SysLogHandler) else "%(asctime)s "
    handler.setFormatter(
        logging.Formatter(stamp + prog + "[%(process)d] %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(SecretMaskingFilter())
    root.addHandler(handler)
    _installed.append(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    log = logging.getLogger(prog)
    if problem:
        log.warning("%s; logging to stderr instead", problem)
    return log


def logs_to_stderr() -> bool:
    """Whether setup_logging currently writes to stderr (so errors need not be repeated)."""
    return any(
        type(handler) is logging.StreamHandler and handler.stream is sys.stderr
        for handler in _installed
    )


def reopen() -> None:
    """Ask every log file installed by setup_logging to reopen (after logrotate)."""
    for handler in _installed:
        if isinstance(handler, ReopenableFileHandler):
            handler.request_reopen()


def install_sighup_reopen() -> None:
    """Reopen log files on SIGHUP (for daemons; call from the main thread)."""
    signal.signal(signal.SIGHUP, lambda _signum, _frame: reopen())
