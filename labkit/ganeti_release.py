"""What differs between the Ganeti releases the lab runs (3.0 on Debian 12, 3.1 on 13)
in how the lab and the tests drive it. Pure, except the `installed_*` readers and `main`."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Sequence

# Ganeti 3.1.0~rc2 (Debian 13) opens a QMP connection per monitor command and never
# closes some of them (ganeti/ganeti#1854, #1865; fixed upstream after rc2 by #1855 and
# #1866). Stopping a guest that ignores ACPI (the lab's busybox guests) makes many such
# connections, and the job can fail with one of these although nothing is wrong with the
# instance; the same command run again then goes through.
QMP_STOP_FAILURES = ("[Errno 11] Resource temporarily unavailable", "Broken pipe")
# The commands that stop a guest (and only those are retried).
STOPPING = frozenset(
    {
        ("gnt-instance", "shutdown"),
        ("gnt-instance", "stop"),
        ("gnt-instance", "remove"),
        ("gnt-instance", "reboot"),
    }
)
STOP_ATTEMPTS = 3


def version_tuple(version: str) -> tuple[int, int]:
    """(major, minor) of a Debian version of the ganeti package: "3.1.0~rc2-4" -> (3, 1)."""
    found = re.match(r"(?:\d+:)?(\d+)\.(\d+)", version)
    if not found:
        raise ValueError(f"not a Ganeti version: {version!r}")
    return int(found.group(1)), int(found.group(2))


def installed_package_version() -> str:
    """The Debian version of the installed ganeti package, e.g. "3.1.0~rc2-3" ("" when
    none is installed yet: the lab installs it)."""
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "ganeti"],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    ).stdout.strip()


def installed_version() -> tuple[int, int]:
    return version_tuple(installed_package_version())


def backup_export_works(package_version: str) -> bool:
    """False for Ganeti 3.1.0's release candidates (Debian 13 ships rc2): its import/export
    daemon has socat check the peer certificate against the node's name, which Ganeti's
    own certificate does not carry, so every `gnt-backup export` fails
    (ganeti/ganeti#1839, fixed after rc2 by #1840)."""
    return "3.1.0~rc" not in package_version


def hotplug_flags(version: tuple[int, int]) -> list[str]:
    """What makes `gnt-instance modify` hotplug: 3.0 wants --hotplug; 3.1 does it by
    default and no longer knows that option (it has --no-hotplug instead)."""
    return ["--hotplug"] if version < (3, 1) else []


def userspace_file_access_works(version: tuple[int, int]) -> bool:
    """ExtStorage access=userspace with a file as the URI: 3.0 hands it to qemu's -drive;
    3.1 builds -blockdev and takes only gluster and rbd URIs ("Unsupported storage URI
    scheme" for anything else)."""
    return version < (3, 1)


def rename_flags(version: tuple[int, int]) -> list[str]:
    """What `gnt-instance rename` needs to take a name no resolver knows: 3.0 checks the
    name (and asks to be forced past it); 3.1 checks nothing by default and no longer
    knows --force."""
    return ["--force", "--no-name-check", "--no-ip-check"] if version < (3, 1) else []


def is_qmp_stop_failure(argv: Sequence[str], returncode: int, output: str) -> bool:
    """True for a failed guest stop that is Ganeti 3.1 rc2's QMP bug, not the lab's."""
    return (
        returncode != 0
        and tuple(argv[:2]) in STOPPING
        and any(failure in output for failure in QMP_STOP_FAILURES)
    )


def stop_retried(
    argv: Sequence[str], attempt: Callable[[], subprocess.CompletedProcess[str]]
) -> subprocess.CompletedProcess[str]:
    """Run `attempt` (argv, unchecked); again, up to STOP_ATTEMPTS in all, while it fails
    with the QMP bug. The last result is the caller's to check."""
    proc = attempt()
    for _ in range(STOP_ATTEMPTS - 1):
        output = (proc.stdout or "") + (proc.stderr or "")
        if not is_qmp_stop_failure(argv, proc.returncode, output):
            break
        proc = attempt()
    return proc


def main(argv: Sequence[str]) -> int:
    """`python3 -m labkit.ganeti_release gnt-instance shutdown ...`: a gnt-* command run
    as the lab runs it (where the lab's Python helpers are not at hand: the other
    release's root); each attempt's output is shown."""

    def attempt() -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        print(f"$ {' '.join(argv)} -> exit {proc.returncode}\n{proc.stdout}{proc.stderr}", end="")
        return proc

    return stop_retried(argv, attempt).returncode


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
