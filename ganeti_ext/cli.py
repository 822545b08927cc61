"""Entry-point wrapper: turns expected failures into one-line errors and exit codes."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from ganeti_ext import logsetup
from ganeti_ext.errors import GanetiExtError

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C

MainFunc = Callable[[list[str]], "int | None"]


def run_main(func: MainFunc, prog: str, argv: Sequence[str] | None = None) -> NoReturn:
    """Run `func(argv)` and exit with its return code (None means 0).

    A GanetiExtError becomes "prog: error: <message>" on stderr and its exit code; an
    unexpected exception is a bug, so it is logged with its traceback and exits 1.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    log = logging.getLogger(prog)
    try:
        code = func(args)
        sys.stdout.flush()
    except GanetiExtError as err:
        _report(prog, f"error: {err}", log)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        _report(prog, "interrupted", log)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): nothing left to tell it. Point stdout at
        # /dev/null so the interpreter's final flush does not raise a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as err:  # the last line of defence, by design
        log.exception("unexpected error (this is a bug)")
        if not logsetup.logs_to_stderr():
            print(f"{prog}: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if code is None else int(code))


def _report(prog: str, message: str, log: logging.Logger) -> None:
    # Keep a copy in the log file, but never print the same line twice on stderr.
    if not logsetup.logs_to_stderr():
        log.error("%s", message)
    print(f"{prog}: {message}", file=sys.stderr)
