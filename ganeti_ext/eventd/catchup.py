"""Catching up with the job queue: what changed while eventd was not watching.

The queue and its archive are the truth. A job already handled to its end is skipped
without opening its file (archived jobs never change), so a restart over a large
archive costs a directory listing and one query per archive folder. Files are read one
at a time: memory does not grow with the number of jobs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ganeti_ext.eventd.processor import Processor
from ganeti_ext.eventd.state import StateDB
from ganeti_ext.events.jobfile import JobFileError, job_id_from_name, read_job_file

log = logging.getLogger(__name__)

ARCHIVE = "archive"
ARCHIVE_FOLDER_SIZE = 10000  # Ganeti archives job N into archive/<N // 10000>/
BASELINE_KEY = "baseline_done"
BATCH = 500


def job_path(queue_dir: Path, job_id: int) -> Path | None:
    """Where job `job_id`'s file is now (live queue first, then the archive)."""
    for candidate in (
        queue_dir / f"job-{job_id}",
        queue_dir / ARCHIVE / str(job_id // ARCHIVE_FOLDER_SIZE) / f"job-{job_id}",
    ):
        if candidate.exists():
            return candidate
    return None


def _job_names(directory: Path) -> list[tuple[int, str]]:
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = [(job_id, name) for name in names if (job_id := job_id_from_name(name)) is not None]
    found.sort()
    return found


def archive_folders(queue_dir: Path) -> Iterator[tuple[int, Path]]:
    archive = queue_dir / ARCHIVE
    try:
        names = os.listdir(archive)
    except (FileNotFoundError, NotADirectoryError):
        return
    for number in sorted(int(name) for name in names if name.isdigit()):
        yield number, archive / str(number)


def process_file(processor: Processor, path: Path, job_id: int, *, publish: bool) -> int:
    """Read one job file and hand it to the processor; a bad file is logged and skipped."""
    try:
        job = read_job_file(str(path), expected_id=job_id)
    except JobFileError as err:
        if path.exists():
            log.warning("skipping %s", err)
        processor.stats.skipped += 1
        return 0
    return processor.handle(job, publish=publish)


def catch_up(queue_dir: Path, state: StateDB, processor: Processor, *, publish: bool) -> None:
    """Handle every job change not yet recorded; on a first start, do not replay the archive."""
    started = time.monotonic()
    first_start = state.get_meta(BASELINE_KEY) is None
    before = (processor.stats.jobs, processor.stats.messages)
    saved_batch, processor.batch_size = processor.batch_size, BATCH
    baseline = 0
    try:
        for number, folder in archive_folders(queue_dir):
            names = _job_names(folder)
            if first_start:
                state.record_baseline(job_id for job_id, _ in names)
                baseline += len(names)
                continue
            low = number * ARCHIVE_FOLDER_SIZE
            known = state.finished_between(low, low + ARCHIVE_FOLDER_SIZE - 1)
            for job_id, name in names:
                if job_id not in known:
                    process_file(processor, folder / name, job_id, publish=publish)
            processor.flush()
        for job_id, name in _job_names(queue_dir):
            record = state.get(job_id)
            if record is not None and record.finished:
                # A finished job no longer changes. (A re-created cluster reuses ids:
                # the daemon resets the state when the cluster's uuid changes.)
                continue
            process_file(processor, queue_dir / name, job_id, publish=publish)
        processor.flush()
        if first_start:
            state.set_meta(BASELINE_KEY, str(int(time.time())))
            state.commit()
    finally:
        processor.batch_size = saved_batch
    jobs = processor.stats.jobs - before[0]
    sent = processor.stats.messages - before[1]
    log.info(
        "catch-up of %s done in %.2f s: %d job(s) changed, %d message(s) queued%s%s",
        queue_dir,
        time.monotonic() - started,
        jobs,
        sent,
        f", {baseline} archived job(s) recorded as already seen (first start)" if baseline else "",
        "" if publish else " (not master: recorded quietly)",
    )


def replay_after_failover(
    queue_dir: Path, state: StateDB, processor: Processor, *, window: float
) -> None:
    """On becoming master, re-send the recent changes this node only watched.

    The old master may have died before publishing them; re-sent messages carry the
    same message_id as the old master's, so consumers drop what they already have.
    """
    cutoff = int(time.time() - window)
    replayed = 0
    for job_id in state.quiet_since(cutoff):
        path = job_path(queue_dir, job_id)
        if path is None:
            continue
        try:
            job = read_job_file(str(path), expected_id=job_id)
        except JobFileError as err:
            log.warning("skipping %s", err)
            continue
        replayed += processor.handle(job, publish=True, forget_recorded=True)
    processor.flush()
    state.clear_quiet()
    state.commit()
    log.info("became master: re-sent %d recent message(s) seen while not master", replayed)
