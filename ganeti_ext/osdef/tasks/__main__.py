"""The helper's program: read the configuration, run the tasks, report on the line.

    python3 -m ganeti_ext.osdef.tasks CONFIG DISK REPORT-DEVICE

Called by the helper's /init. Exit status 0 after `DONE`; on any failure one `ERROR`
line says which task failed and why, and the exit status is 1.
"""

from __future__ import annotations

import json
import sys

from ganeti_ext.osdef import tasks
from ganeti_ext.osdef.tasks.context import Context, Reporter, System, TaskError
from ganeti_ext.osdef.tasks.guest import GuestPathError

CONFIG_VERSION = 1


def main(argv: list) -> int:
    config_path, disk, line_path = argv
    with open(line_path, "w", encoding="utf-8", errors="replace") as line:
        report = Reporter(line)
        try:
            with open(config_path, encoding="utf-8") as stream:
                config = json.load(stream)
            if config.get("version") != CONFIG_VERSION:
                raise TaskError(
                    f"configuration version {config.get('version')} is not {CONFIG_VERSION}"
                )
            run_all(Context(config, disk, System(), report))
        except (TaskError, GuestPathError, OSError, ValueError, KeyError) as err:
            report.line(
                "ERROR",
                f"{type(err).__name__ if not isinstance(err, TaskError) else ''} {err}".strip(),
            )
            return 1
        report.line("DONE")
        return 0


def run_all(ctx: Context) -> None:
    for name in ctx.config.get("tasks", tasks.ORDER):
        if name not in tasks.MODULES:
            raise TaskError(f"unknown task {name}")
        ctx.report.line("TASK_START", name)
        try:
            tasks.load(name).run(ctx)
        except (TaskError, GuestPathError) as err:
            raise TaskError(f"{name}: {err}") from None
        except OSError as err:
            raise TaskError(
                f"{name}: {err.strerror or err}" + (f": {err.filename}" if err.filename else "")
            ) from None
        except Exception as err:  # a bug, or an image no check foresaw: still one ERROR line
            raise TaskError(f"{name}: internal error ({type(err).__name__}: {err})") from None
        ctx.report.line("TASK_END", name)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
