"""Running the helper VM: the qemu command line (pure) and the run itself.

qemu gets no network (-nic none), no default devices (-nodefaults), a seccomp sandbox,
an unprivileged user once it has opened its files (-runas), the instance's disk as its
only disk, the configuration through fw_cfg (read-only in the guest, no size cap worth
mentioning), and two serial ports on Unix sockets that it waits for: the console (kept,
bounded, for diagnostics) and the protocol line (protocol.LineReader). A hard timeout,
a flood or a broken protocol kills it.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import selectors
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ganeti_ext.errors import ValidationError
from ganeti_ext.fsutil import file_lock
from ganeti_ext.osdef.helper.protocol import Event, LineReader, ProtocolError
from ganeti_ext.runner import BASE_ENV

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
CONSOLE_KEEP = 64 * 1024  # the console's last bytes, for an error report
CONNECT_TIMEOUT = 30.0
POWEROFF_GRACE = 10.0
BOOT_LOCK_TIMEOUT = 120.0  # a rebuild's replacing of the files takes milliseconds


@dataclass(frozen=True)
class HelperSpec:
    kernel: Path
    initrd: Path
    disk: str
    config: Path
    workdir: Path
    accel: str = "tcg"  # tcg, kvm or auto
    memory_mib: int = 384
    # The disk, opened by us (read-write and read-only: qemu probes with both) and
    # handed to the unprivileged qemu, which could not open it itself.
    disk_fds: tuple[int, ...] = (3, 4)
    cache: str = "none"  # writeback where the disk cannot do O_DIRECT (tmpfs)
    block_device: bool = True  # a file template's disk is a regular file
    # The kernel and initramfs opened by us under the build lock (a kernel and an
    # initramfs of one build, even while snf-image-update-helper replaces them).
    boot_fds: tuple[int, int] | None = None


@contextmanager
def boot_files_lock(directory: Path, *, shared: bool) -> Iterator[None]:
    """The helper's files in `directory` as one set: the build replaces them holding it
    exclusively, a run opens them holding it shared."""
    with file_lock(
        directory / ".build.lock", timeout=BOOT_LOCK_TIMEOUT, shared=shared,
        busy=f"the helper VM in {directory} is being rebuilt", error=ValidationError,
    ):  # fmt: skip
        yield


def qemu_argv(spec: HelperSpec) -> list[str]:
    accel = {"auto": ["-accel", "kvm", "-accel", "tcg"]}.get(spec.accel, ["-accel", spec.accel])
    return [
        QEMU,
        "-name", "snf-image-helper",
        "-M", "pc",
        *accel,
        "-m", str(spec.memory_mib),
        "-smp", "1",
        "-nodefaults",
        "-no-user-config",
        "-nographic",
        "-nic", "none",
        "-no-reboot",
        "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel", f"/dev/fd/{spec.boot_fds[0]}" if spec.boot_fds else str(spec.kernel),
        "-initrd", f"/dev/fd/{spec.boot_fds[1]}" if spec.boot_fds else str(spec.initrd),
        "-append", "console=ttyS0 quiet panic=-1 loglevel=3",
        *(arg for fd in spec.disk_fds for arg in ("-add-fd", f"fd={fd},set=1")),
        "-drive",
        f"file.driver={'host_device' if spec.block_device else 'file'},"
        f"file.filename=/dev/fdset/1,format=raw,if=virtio,cache={spec.cache},aio=threads",
        "-fw_cfg", f"name=opt/snf-image/config,file={spec.config}",
        "-chardev", f"socket,id=console,path={spec.workdir}/console.sock,server=on,wait=on",
        "-serial", "chardev:console",
        "-chardev", f"socket,id=line,path={spec.workdir}/line.sock,server=on,wait=on",
        "-serial", "chardev:line",
    ]  # fmt: skip


class HelperFailed(ValidationError):
    """The helper did not finish its work; the message says why and what it said last."""


def run_helper(
    spec: HelperSpec,
    user: str,
    timeout: float,
    on_event: Callable[[Event], None] = lambda event: None,
) -> list[Event]:
    """Run the helper as `user` to its end; returns its events, or raises HelperFailed.

    We open the disk (root may, the helper's user may not) and hand qemu the open file;
    the work directory and the configuration become the user's, nobody else's.
    """
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise HelperFailed(f"the helper's user {user} does not exist (see [helper] user)") from None
    os.chown(spec.workdir, account.pw_uid, account.pw_gid)
    os.chmod(spec.workdir, 0o700)
    os.chown(spec.config, account.pw_uid, account.pw_gid)
    os.chmod(spec.config, 0o600)
    boot = _open_boot_files(spec)
    try:
        fds = _open_disk(spec.disk) + boot
    except BaseException:
        for fd in boot:
            os.close(fd)
        raise
    try:
        cache = "none" if _direct(fds[0]) else "writeback"
        block = stat.S_ISBLK(os.fstat(fds[0]).st_mode)
        spec = replace(
            spec, disk_fds=tuple(fds[:2]), boot_fds=(boot[0], boot[1]), cache=cache,
            block_device=block,
        )  # fmt: skip
        argv = qemu_argv(spec)
        log.info("starting the helper: %s", " ".join(argv))
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            pass_fds=tuple(fds),
            user=account.pw_uid,
            group=account.pw_gid,
            extra_groups=[],
            cwd=spec.workdir,
            # Not ours: Ganeti's environment holds the OS parameters, secrets included,
            # and the helper's user could read them from /proc/<pid>/environ.
            env=dict(BASE_ENV),
        )
    finally:
        for fd in fds:
            os.close(fd)
    reader = LineReader()
    console = bytearray()
    try:
        sockets = _connect(spec.workdir, process)
        _pump(process, sockets, reader, console, time.monotonic() + timeout, on_event, timeout)
    except ProtocolError as err:
        raise HelperFailed(f"helper stopped: {err}{_last_words(console)}") from None
    finally:
        _kill(process)
        process.wait()
    if reader.outcome is None:
        raise HelperFailed(
            "the helper ended without reporting success or failure" + _last_words(console)
        )
    if reader.outcome.kind == "error":
        raise HelperFailed(reader.outcome.text or "the helper reported an unnamed error")
    return reader.events


def _open_boot_files(spec: HelperSpec) -> list[int]:
    fds: list[int] = []
    try:
        with boot_files_lock(spec.kernel.parent, shared=True):
            for path in (spec.kernel, spec.initrd):
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as err:
        for fd in fds:
            os.close(fd)
        raise HelperFailed(
            f"the helper VM's {err.filename}: {err.strerror} (run snf-image-update-helper)"
        ) from None
    return fds


def _open_disk(path: str) -> list[int]:
    """The disk opened read-write and read-only, with O_DIRECT where it can (cache=none)."""
    fds: list[int] = []
    try:
        for mode in (os.O_RDWR, os.O_RDONLY):
            try:
                fds.append(os.open(path, mode | os.O_CLOEXEC | os.O_DIRECT))
            except OSError as err:
                if err.errno != errno.EINVAL:
                    raise
                fds.append(os.open(path, mode | os.O_CLOEXEC))
    except OSError as err:
        for fd in fds:
            os.close(fd)
        raise HelperFailed(f"cannot open the disk {path}: {err.strerror}") from None
    return fds


def _direct(fd: int) -> bool:
    import fcntl

    return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)


def _connect(workdir: Path, process: subprocess.Popen) -> dict[str, socket.socket]:
    """Connect to both serial sockets (qemu waits for each before it starts the VM)."""
    sockets = {}
    deadline = time.monotonic() + CONNECT_TIMEOUT
    for name in ("console", "line"):
        path = str(workdir / f"{name}.sock")
        while True:
            if process.poll() is not None:
                out = process.stdout.read().decode(errors="replace") if process.stdout else ""
                raise HelperFailed(
                    f"qemu exited at start: {' | '.join(out.strip().splitlines()[-3:])}"
                )
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                client.connect(path)
                sockets[name] = client
                break
            except (FileNotFoundError, ConnectionRefusedError):
                client.close()
                if time.monotonic() > deadline:
                    raise HelperFailed("qemu did not open its serial sockets") from None
                time.sleep(0.01)
    return sockets


def _pump(process, sockets, reader, console, deadline, on_event, timeout) -> None:
    selector = selectors.DefaultSelector()
    for name, sock in sockets.items():
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, name)
    # qemu's own messages: read as they come, so a chatty qemu never blocks on the pipe.
    os.set_blocking(process.stdout.fileno(), False)
    selector.register(process.stdout, selectors.EVENT_READ, "qemu")
    open_count = len(sockets) + 1
    while open_count:
        left = deadline - time.monotonic()
        if left <= 0:
            if reader.outcome is not None:
                break  # it reported, then did not power off: killed by the caller
            raise ProtocolError(f"no result within {timeout:.0f} s (the helper was killed)")
        for key, _ in selector.select(min(left, 1.0)):
            if key.data == "qemu":
                data = os.read(key.fileobj.fileno(), 65536)
            else:
                data = key.fileobj.recv(65536)
            if not data:
                selector.unregister(key.fileobj)
                open_count -= 1
                continue
            if key.data == "line":
                for event in reader.feed(data):
                    on_event(event)
            else:
                console += data
                del console[:-CONSOLE_KEEP]
        if reader.outcome is not None:
            if process.poll() is not None:
                break
            # Its work is done and on disk (UmountImage synced, cache=none): a helper
            # slow to power off gets a short grace, then the kill.
            deadline = min(deadline, time.monotonic() + POWEROFF_GRACE)
    for sock in sockets.values():
        sock.close()


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _last_words(console: bytearray) -> str:
    text = bytes(console).decode("ascii", "replace")
    lines = ["".join(c for c in line if c.isprintable()) for line in text.splitlines()]
    lines = [
        line.strip()[:200]
        for line in lines
        if line.strip() and "QEMU waiting for connection" not in line
    ]
    return f"; its console ended with: {' | '.join(lines[-3:])}" if lines else ""


def workdir() -> tempfile.TemporaryDirectory:
    """A private directory for the sockets and the configuration (removed afterwards)."""
    return tempfile.TemporaryDirectory(prefix="snf-image-helper-")
