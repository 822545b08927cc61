"""The binding table: every binding file in the state dir, followed with inotify.

A write (IN_CLOSE_WRITE, IN_MOVED_TO) adds or replaces a binding, a delete (IN_DELETE,
IN_MOVED_FROM) removes it, an inotify queue overflow triggers a full rescan. A bad file
is logged and skipped (its previous good version is dropped too: the NIC script meant
to change it), and never blocks the others.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyinotify

from ganeti_ext.bindings import Binding, BindingError, is_binding_name, read_binding

log = logging.getLogger(__name__)

IN_MODIFY = 0x002
IN_CLOSE_WRITE = 0x008
IN_MOVED_FROM = 0x040
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
_WATCH_MASK = (
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
)


class BindingTable:
    """Bindings by tap name, and by (indev, MAC) for the MAC-keyed fallback."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.by_tap: dict[str, Binding] = {}
        self.by_indev_mac: dict[tuple[str, bytes], Binding] = {}
        self.bad: dict[str, str] = {}  # file name -> why it was skipped
        self.generation = 0  # bumped on every change (callers drop their caches)

    def __len__(self) -> int:
        return len(self.by_tap)

    def __iter__(self) -> Iterator[Binding]:
        return iter(list(self.by_tap.values()))

    def get(self, tap: str) -> Binding | None:
        return self.by_tap.get(tap)

    def by_mac(self, indev: str, mac: bytes) -> Binding | None:
        return self.by_indev_mac.get((indev, mac))

    def _put(self, binding: Binding) -> None:
        self._drop(binding.tap)
        self.by_tap[binding.tap] = binding
        if binding.indev is not None:
            self.by_indev_mac[(binding.indev, binding.mac_bytes)] = binding

    def _drop(self, tap: str) -> Binding | None:
        old = self.by_tap.pop(tap, None)
        if old is not None and old.indev is not None:
            key = (old.indev, old.mac_bytes)
            if self.by_indev_mac.get(key) is old:
                del self.by_indev_mac[key]
        return old

    def load(self, name: str) -> Binding | None:
        """(Re)read one file; returns the binding, or None if it is gone or bad."""
        if not is_binding_name(name):
            return None
        self.generation += 1
        try:
            binding = read_binding(self.directory / name)
        except BindingError as err:
            self._drop(name)
            if not (self.directory / name).exists():
                self.bad.pop(name, None)
                return None
            self.bad[name] = err.message
            log.error("skipping binding: %s", err)
            return None
        self.bad.pop(name, None)
        self._put(binding)
        return binding

    def remove(self, name: str) -> Binding | None:
        self.generation += 1
        self.bad.pop(name, None)
        return self._drop(name)

    def rescan(self) -> None:
        """Read the whole directory again (start, inotify overflow)."""
        self.by_tap.clear()
        self.by_indev_mac.clear()
        self.bad.clear()
        try:
            names = os.listdir(self.directory)
        except OSError as err:
            log.error("cannot list binding directory %s: %s", self.directory, err.strerror)
            names = []
        # Quiet per-file logging for huge directories is not worth it: errors are rare.
        for name in names:
            self.load(name)
        self.generation += 1
        log.info("loaded %d bindings from %s (%d bad)", len(self), self.directory, len(self.bad))

    def dump(self) -> list[str]:
        lines = [f"{len(self.by_tap)} bindings in {self.directory}"]
        for tap in sorted(self.by_tap):
            b = self.by_tap[tap]
            lines.append(
                f"  {tap}: mac={b.mac} ip={b.ip} indev={b.indev} subnet={b.subnet} "
                f"gw={b.gateway} subnet6={b.subnet6} gw6={b.gateway6} eui64={b.eui64} "
                f"mtu={b.mtu} private={b.private} macspoof={b.macspoof} host={b.hostname}"
            )
        for name, why in sorted(self.bad.items()):
            lines.append(f"  {name}: BAD: {why}")
        return lines


class Inotify:
    """Changes in the binding directory, for the daemon's select loop: pyinotify (the
    suite's one inotify reader, as eventd's) behind the descriptor and (mask, name)
    events this module works with."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = os.fspath(directory)
        self._events: list[tuple[int, str]] = []
        self._wm = pyinotify.WatchManager()
        # timeout=0: read only what is there, never block the loop.
        self._notifier = pyinotify.Notifier(self._wm, self._collect, timeout=0)
        self.watch()

    def _collect(self, event: pyinotify.Event) -> None:
        self._events.append((event.mask, event.name or ""))

    def watch(self) -> None:
        try:
            self._wm.add_watch(self.directory, _WATCH_MASK | IN_ONLYDIR, quiet=False)
        except pyinotify.WatchManagerError as err:
            raise OSError(errno.ENOENT, f"inotify on {self.directory}: {err}") from None

    def fileno(self) -> int:
        return self._wm.get_fd()

    def read(self) -> list[tuple[int, str]]:
        """Pending events as (mask, name); an empty name for events on the directory."""
        while self._notifier.check_events(timeout=0):
            self._notifier.read_events()
        self._notifier.process_events()
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        self._notifier.stop()


def apply_events(
    table: BindingTable,
    events: list[tuple[int, str]],
    inotify: Inotify,
    loaded: list[Binding] | None = None,
) -> bool:
    """Apply inotify events to the table; True if anything changed. Bindings (re)read
    from a written file are appended to `loaded` (not those of a full rescan)."""
    if not events:
        return False
    if any(
        mask & (IN_Q_OVERFLOW | IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) for mask, _ in events
    ):
        if any(mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED) for mask, _ in events):
            try:
                inotify.watch()
            except OSError as err:
                log.error("binding directory lost: %s", err)
        log.warning("inotify overflow or directory replaced: rescanning bindings")
        table.rescan()
        return True
    for mask, name in events:
        if not name or not is_binding_name(name):
            continue
        if mask & (IN_CLOSE_WRITE | IN_MOVED_TO):
            binding = table.load(name)
            if binding is not None:
                log.info("binding %s: mac=%s ip=%s", name, binding.mac, binding.ip)
                if loaded is not None:
                    loaded.append(binding)
        elif mask & (IN_DELETE | IN_MOVED_FROM) and table.remove(name) is not None:
            log.info("binding %s removed", name)
    return True
