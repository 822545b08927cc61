"""inotify on the job queue, its archive, ssconf and the hand-over spool (directories only).

Ganeti renames each new version of a job file into place, so a watch on the file's inode
would go stale after the first rewrite: the watches are on the directories, for
IN_MOVED_TO and IN_CLOSE_WRITE. Events are only collected here (which jobs changed, did
the master change, is there spool work); the daemon acts on them once per batch, so a
job rewritten five times between two reads is read once, at its latest content.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pyinotify

from ganeti_ext.events.jobfile import job_id_from_name

log = logging.getLogger(__name__)

FILE_EVENTS = pyinotify.IN_MOVED_TO | pyinotify.IN_CLOSE_WRITE
DIR_GONE = pyinotify.IN_DELETE_SELF | pyinotify.IN_MOVE_SELF


@dataclass
class Changes:
    """What happened since the daemon last looked."""

    jobs: dict[int, Path] = field(default_factory=dict)  # job id -> file that changed
    master_changed: bool = False
    spool: bool = False
    rescan: bool = False  # events were lost (overflow) or a directory went away

    def clear(self) -> None:
        self.jobs.clear()
        self.master_changed = self.spool = self.rescan = False


class _Handler(pyinotify.ProcessEvent):
    def my_init(self, watcher: Watcher) -> None:  # pyinotify's constructor hook
        self.watcher = watcher

    def process_default(self, event: pyinotify.Event) -> None:
        self.watcher.on_event(event)

    def process_IN_Q_OVERFLOW(self, event: pyinotify.Event) -> None:
        log.warning("inotify queue overflowed: rescanning the job queue")
        self.watcher.changes.rescan = True


class Watcher:
    """Owns the inotify watches; `poll` fills `changes`."""

    def __init__(self, queue_dir: Path, master_file: Path, spool_dirs: list[Path]) -> None:
        self.queue_dir = queue_dir
        self.archive_dir = queue_dir / "archive"
        self.master_file = master_file
        self.spool_dirs = spool_dirs
        self.changes = Changes()
        self._wm = pyinotify.WatchManager()
        self._notifier = pyinotify.Notifier(self._wm, _Handler(watcher=self))
        self._queue_identity: tuple[int, int] | None = None
        self.watching_queue = False

    def close(self) -> None:
        self._notifier.stop()

    def setup(self) -> bool:
        """(Re)create the watches; False if the queue directory does not exist (yet)."""
        for wd in list(self._wm.watches):
            self._wm.rm_watch(wd, quiet=True)
        for directory in self.spool_dirs:
            directory.mkdir(mode=0o750, parents=True, exist_ok=True)
            self._add(directory, FILE_EVENTS)
        if self.master_file.parent.is_dir():
            self._add(self.master_file.parent, FILE_EVENTS)
        self._queue_identity = _identity(self.queue_dir)
        self.watching_queue = self._queue_identity is not None
        if not self.watching_queue:
            return False
        self._add(self.queue_dir, FILE_EVENTS | DIR_GONE)
        if self.archive_dir.is_dir():
            self._add(self.archive_dir, FILE_EVENTS | pyinotify.IN_CREATE, rec=True)
        return True

    def _add(self, path: Path, mask: int, rec: bool = False) -> None:
        result = self._wm.add_watch(str(path), mask, rec=rec, auto_add=rec, quiet=True)
        if any(wd < 0 for wd in result.values()):
            log.warning("cannot watch %s", path)

    def queue_replaced(self) -> bool:
        """Whether the queue directory vanished or was re-created since `setup`."""
        return _identity(self.queue_dir) != self._queue_identity

    def poll(self, timeout_ms: int) -> None:
        """Wait up to `timeout_ms` for events and collect them into `changes`."""
        if self._notifier.check_events(timeout_ms):
            self._notifier.read_events()
            self._notifier.process_events()

    def on_event(self, event: pyinotify.Event) -> None:
        if event.mask & DIR_GONE or event.mask & pyinotify.IN_IGNORED:
            if Path(event.path) == self.queue_dir:
                self.changes.rescan = True
            return
        if event.dir:
            # A new archive folder: its files may have landed before the watch did.
            if Path(event.path).parent == self.archive_dir or Path(event.path) == self.archive_dir:
                self.changes.rescan = True
            return
        directory = Path(event.path)
        name = event.name
        if directory == self.master_file.parent:
            if name == self.master_file.name:
                self.changes.master_changed = True
            return
        if directory in self.spool_dirs:
            self.changes.spool = True
            return
        job_id = job_id_from_name(name)
        if job_id is not None:
            self.changes.jobs[job_id] = directory / name


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino)
