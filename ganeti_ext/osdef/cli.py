"""Entry point of the snf-image OS scripts (os-definitions/snf-image/<script>).

Logs go to stderr: Ganeti keeps each OS script's output in /var/log/ganeti/os/.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NoReturn

from ganeti_ext import cli, logsetup
from ganeti_ext.environ import osapi
from ganeti_ext.osdef import snf_image
from ganeti_ext.paths import DEFAULT, Paths

SCRIPTS = ("create", "import", "export", "rename", "verify")


def execute(
    script: str, env: Mapping[str, str], argv: Sequence[str] = (), *, paths: Paths = DEFAULT
) -> None:
    """Run OS script `script` of snf-image for environment `env`."""
    if script == "verify":
        snf_image.verify(osapi.parse_verify(env), list(argv), paths)
    elif script == "create":
        snf_image.create(osapi.parse_create(env), paths)
    elif script == "rename":
        snf_image.rename(osapi.parse_rename(env), paths)
    elif script == "import":
        snf_image.import_disk(osapi.parse_import(env))
    elif script == "export":
        snf_image.export_disk(osapi.parse_export(env))
    else:
        raise ValueError(f"unknown OS script {script!r}")


def main(
    script: str,
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    paths: Paths = DEFAULT,
) -> NoReturn:
    """What each os-definitions/snf-image/<script> calls; exits with the result."""
    prog = f"snf-image-{script}"
    environment = os.environ if env is None else env

    def run(args: list[str]) -> int:
        debug = environment.get("DEBUG_LEVEL", "0") not in ("", "0")
        logsetup.setup_logging(prog, "stderr", debug=debug)
        execute(script, environment, args, paths=paths)
        return 0

    cli.run_main(run, prog, argv)
