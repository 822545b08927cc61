"""`snf-image-update-helper`: (re)build the helper VM snf-image personalizes images in.

Run it after installing or upgrading snf-image (the helper carries the tasks' code and
this node's Python) and after a kernel update in the archive. It needs apt to reach the
Debian archive for the kernel package; nothing else is downloaded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ganeti_ext import cli, logsetup
from ganeti_ext.osdef import settings
from ganeti_ext.osdef.helper.build import Builder
from ganeti_ext.paths import DEFAULT

PROG = "snf-image-update-helper"


def main(argv: Sequence[str] | None = None) -> NoReturn:
    def run(args: list[str]) -> int:
        parser = argparse.ArgumentParser(
            prog=PROG,
            description="Build the kernel and initramfs of snf-image's helper VM from "
            "Debian packages, into [helper] dir of /etc/snf-image/snf-image.conf.",
        )
        parser.add_argument(
            "--config",
            metavar="PATH",
            help=f"configuration file (default: {DEFAULT.snf_image_conf}; a file named here "
            "must exist)",
        )
        parser.add_argument("--debug", action="store_true")
        options = parser.parse_args(args)
        logsetup.setup_logging(PROG, "stderr", debug=options.debug)
        conf = settings.load(
            options.config or DEFAULT.snf_image_conf, must_exist=options.config is not None
        )
        manifest = Builder(conf.helper.dir).build()
        print(
            f"helper VM in {conf.helper.dir}: kernel {manifest['kernel']}, "
            f"python {manifest['python']}, initramfs {manifest['initrd_bytes'] // 2**20} MiB"
        )
        return 0

    cli.run_main(run, PROG, argv)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
