"""nfdhcpd's event loop: NFQUEUE sockets, the binding directory's inotify, periodic RAs
and signals, all in one thread (so RAs never race binding updates, unlike upstream).

Replies go out raw (AF_PACKET) on the device the request came from; periodic RAs go
out each binding's tap. Every packet gets a verdict, whatever happens while answering
it: a bug in the answering code accepts the packet rather than dropping it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import pwd
import select
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from ganeti_ext import logsetup
from ganeti_ext.bindings import Binding
from ganeti_ext.errors import GanetiExtError
from ganeti_ext.nfdhcpd.config import Loaded
from ganeti_ext.nfdhcpd.responder import DROP, Outcome, Responder
from ganeti_ext.nfdhcpd.table import BindingTable, Inotify, apply_events

log = logging.getLogger("nfdhcpd")

CAP_NET_ADMIN = 12
CAP_NET_RAW = 13
_GONE = (errno.ENXIO, errno.ENODEV, errno.ENETDOWN, errno.EBADF)


class Sender:
    """One raw socket per device, opened on first use and reopened if the device was
    recreated (a new tap with the old name)."""

    def __init__(self) -> None:
        self.sockets: dict[str, tuple[socket.socket, bytes]] = {}

    def _open(self, device: str) -> tuple[socket.socket, bytes] | None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except OSError as err:
            log.error("cannot open a raw socket: %s", err.strerror)
            return None
        try:
            sock.bind((device, 0))
            mac = sock.getsockname()[4][:6]
        except OSError as err:
            sock.close()
            log.debug("cannot bind a raw socket to %s: %s", device, err.strerror)
            return None
        if len(mac) != 6:
            sock.close()
            return None
        entry = (sock, mac)
        self.sockets[device] = entry
        return entry

    def mac_of(self, device: str) -> bytes | None:
        entry = self.sockets.get(device) or self._open(device)
        return entry[1] if entry else None

    def send(self, device: str, frame: bytes) -> bool:
        for _attempt in (1, 2):
            entry = self.sockets.get(device) or self._open(device)
            if entry is None:
                return False
            try:
                entry[0].send(frame)
                return True
            except OSError as err:
                self.forget(device)
                if err.errno not in _GONE:
                    log.warning("sending on %s failed: %s", device, err.strerror)
                    return False
        return False

    def forget(self, device: str) -> None:
        entry = self.sockets.pop(device, None)
        if entry is not None:
            entry[0].close()

    def close(self) -> None:
        for device in list(self.sockets):
            self.forget(device)


class Devices:
    """ifindex -> name, cached; cleared whenever the binding table changes."""

    def __init__(self) -> None:
        self.names: dict[int, str | None] = {}

    def name(self, index: int) -> str | None:
        if not index:
            return None
        try:
            return self.names[index]
        except KeyError:
            try:
                name: str | None = socket.if_indextoname(index)
            except OSError:
                name = None
            self.names[index] = name
            return name


def keep_capabilities(user: str) -> None:
    """Become `user`, keeping only CAP_NET_ADMIN (queue verdicts) and CAP_NET_RAW (raw
    sockets for new taps)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise GanetiExtError(f"[general] user: no such user: {user!r}") from None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    pr_set_keepcaps = 8
    if libc.prctl(pr_set_keepcaps, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    mask = (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, self
    data = (ctypes.c_uint32 * 6)(mask, mask, 0, 0, 0, 0)  # effective, permitted, inheritable
    if libc.capset(header, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


class Daemon:
    def __init__(
        self,
        cfg: Loaded,
        *,
        queue_factory: Callable[[int], object] | None = None,
    ) -> None:
        self.cfg = cfg
        self.table = BindingTable(cfg.raw.general.datapath)
        self.sender = Sender()
        self.devices = Devices()
        self.responder = Responder(self.table, cfg.dhcp, cfg.ipv6, self.sender.mac_of)
        self.queues: list[tuple[str, object]] = []
        self.queue_factory = queue_factory
        self._stop = False
        self._dump = False
        self._reopen = False
        self._generation = -1

    # --- set-up -------------------------------------------------------------------------

    def bind_queues(self) -> None:
        from netfilterqueue import NetfilterQueue  # only the daemon needs the C module

        handlers = {
            "dhcpv4": self.responder.dhcpv4,
            "rs": self.responder.icmpv6,
            "ns": self.responder.icmpv6,
            "dhcpv6": self.responder.dhcpv6,
        }
        for kind, number in self.cfg.queues.items():
            family = socket.AF_INET if kind == "dhcpv4" else socket.AF_INET6
            queue = NetfilterQueue(af=family)
            try:
                queue.bind(number, self._callback(kind, handlers[kind]), max_len=4096)
            except OSError as err:
                raise GanetiExtError(
                    f"cannot bind NFQUEUE {number} ({kind}): {err} "
                    "(is another nfdhcpd running? are we root / CAP_NET_ADMIN?)"
                ) from None
            self.queues.append((kind, queue))
            log.info("listening on NFQUEUE %d (%s)", number, kind)

    def _callback(self, kind: str, handler: Callable[..., Outcome]):
        devices, sender = self.devices, self.sender

        def on_packet(packet) -> None:
            try:
                hw = packet.get_hw()
                outcome = handler(
                    packet.get_payload(),
                    devices.name(packet.indev),
                    devices.name(packet.physindev),
                    hw[:6] if hw else None,
                )
                for device, frame in outcome.frames:
                    sender.send(device, frame)
            except Exception:  # a bug must not stop the daemon nor blackhole the guest
                log.exception("error handling a %s packet: accepting it", kind)
                packet.accept()
                return
            if outcome.verdict == DROP:
                packet.drop()
            else:
                packet.accept()

        return on_packet

    # --- the loop -----------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self._stop = True
        elif signum == signal.SIGUSR1:
            self._dump = True
        elif signum == signal.SIGHUP:
            self._reopen = True

    def install_signals(self) -> socket.socket:
        rfd, wfd = socket.socketpair()
        rfd.setblocking(False)
        wfd.setblocking(False)
        signal.set_wakeup_fd(wfd.fileno(), warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        self._wakeup = (rfd, wfd)
        return rfd

    def run(self, inotify: Inotify) -> None:
        wake = self.install_signals()
        readers = {queue.get_fd(): queue for _kind, queue in self.queues}  # type: ignore
        period = self.cfg.ipv6.ra_period if self.cfg.ipv6 is not None else None
        next_ra = time.monotonic() + 1.0 if period else None
        fds = [*readers, inotify.fileno(), wake.fileno()]
        while not self._stop:
            timeout = 5.0 if next_ra is None else max(0.0, next_ra - time.monotonic())
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                ready = []
            for fd in ready:
                if fd in readers:
                    readers[fd].run(block=False)  # type: ignore[attr-defined]
                elif fd == inotify.fileno():
                    self.bindings_changed(inotify.read(), inotify)
                else:
                    try:
                        wake.recv(4096)
                    except BlockingIOError:
                        pass
            if self._reopen:
                self._reopen = False
                logsetup.reopen()
                log.info("SIGHUP: log reopened")
            if self._dump:
                self._dump = False
                self.dump()
            if next_ra is not None and time.monotonic() >= next_ra:
                self.ra_round()
                next_ra = time.monotonic() + period  # type: ignore[operator]
        log.info("stopping")

    def bindings_changed(self, events: list[tuple[int, str]], inotify: Inotify) -> None:
        """Apply inotify events; a guest whose binding just appeared (or changed) gets an
        RA at once rather than at the next periodic round (upstream had it wait up to
        ra_period, so a guest that solicited before its binding existed went without)."""
        loaded: list[Binding] = []
        if not apply_events(self.table, events, inotify, loaded):
            return
        self._table_changed()
        for binding in loaded:
            self.announce(binding)

    def announce(self, binding: Binding) -> bool:
        try:
            ra = self.responder.router_advertisement(binding)
            return ra is not None and self.sender.send(*ra)
        except Exception:
            log.exception("RA for new binding %s failed", binding.tap)
            return False

    def _table_changed(self) -> None:
        self.devices.names.clear()
        for device in list(self.sender.sockets):
            if self.table.get(device) is None:
                self.sender.forget(device)

    def ra_round(self) -> int:
        """One periodic RA to every IPv6 binding; a failing binding never stops the round."""
        sent = 0
        for binding in self.table:
            try:
                ra = self.responder.router_advertisement(binding)
                if ra is not None and self.sender.send(*ra):
                    sent += 1
            except Exception:
                log.exception("periodic RA for %s failed", binding.tap)
        log.debug("periodic RAs sent: %d", sent)
        return sent

    def dump(self) -> None:
        for line in self.table.dump():
            log.info("%s", line)
        for tap, lease in sorted(self.responder.leases.items()):
            log.info(
                "  lease %s: %s %s %s updated %s",
                tap,
                lease.mac,
                lease.ip,
                lease.state,
                time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(lease.updated)),
            )
        log.info("  counters: %s", dict(sorted(self.responder.stats.items())))

    def close(self) -> None:
        for _kind, queue in self.queues:
            try:
                queue.unbind()  # type: ignore[attr-defined]
            except Exception:
                log.exception("unbinding a queue failed")
        self.queues.clear()
        self.sender.close()


def write_pidfile(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{os.getpid()}\n")
