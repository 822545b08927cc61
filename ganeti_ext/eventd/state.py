"""eventd's memory across restarts: which opcode statuses of which job it has handled.

One SQLite database (WAL) with a row per job: the status last handled for each opcode,
whether the job is finished, and whether the statuses were only *seen* (on a node that
was not master: nothing was published by us) or handed to the outbox. A status counts
as handled once its message is in the durable outbox; the outbox, not this database,
guarantees delivery. Losing the last commits in a crash only makes eventd rebuild the
same messages (same message_id), never skip one, so commits need not be synchronous.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ganeti_ext.errors import GanetiExtError

SCHEMA_VERSION = "1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY,
    received INTEGER,           -- job's received_timestamp in microseconds; NULL: baseline
    statuses TEXT NOT NULL,     -- status last handled per opcode, comma-separated
    finished INTEGER NOT NULL,  -- every opcode in a final status
    quiet INTEGER NOT NULL,     -- seen while not master: published by someone else
    changed INTEGER NOT NULL    -- the job's latest timestamp (seconds), for failover replay
);
CREATE INDEX IF NOT EXISTS jobs_quiet ON jobs (changed) WHERE quiet = 1;
"""


class StateError(GanetiExtError):
    """The state database cannot be opened or used."""


@dataclass(frozen=True)
class JobRecord:
    job_id: int
    received: int | None
    statuses: tuple[str, ...]
    finished: bool
    quiet: bool
    changed: int


class StateDB:
    """The state database; one connection, used from one thread."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            # Opened by whoever builds the daemon, then used only by its main loop.
            self._db = sqlite3.connect(
                self.path, isolation_level="DEFERRED", check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            version = self.get_meta("schema_version")
            if version is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
            elif version != SCHEMA_VERSION:
                raise StateError(
                    f"{self.path}: schema version {version}, expected {SCHEMA_VERSION}"
                )
            self._db.commit()
        except (OSError, sqlite3.Error) as err:
            raise StateError(f"cannot open state database {self.path}: {err}") from None

    def close(self) -> None:
        self._db.commit()
        self._db.close()

    def commit(self) -> None:
        self._db.commit()

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def get(self, job_id: int) -> JobRecord | None:
        row = self._db.execute(
            "SELECT job_id, received, statuses, finished, quiet, changed FROM jobs"
            " WHERE job_id = ?",
            (job_id,),
        ).fetchone()
        if row is None:
            return None
        return JobRecord(
            job_id=row[0],
            received=row[1],
            statuses=tuple(row[2].split(",")) if row[2] else (),
            finished=bool(row[3]),
            quiet=bool(row[4]),
            changed=row[5],
        )

    def record(
        self,
        job_id: int,
        *,
        received: int | None,
        statuses: Sequence[str],
        finished: bool,
        quiet: bool,
        changed: int,
    ) -> None:
        """Remember the statuses handled for a job (committed by `commit`)."""
        self._db.execute(
            "INSERT OR REPLACE INTO jobs (job_id, received, statuses, finished, quiet, changed)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (job_id, received, ",".join(statuses), int(finished), int(quiet), changed),
        )

    def record_baseline(self, job_ids: Iterable[int]) -> None:
        """Mark archived jobs as handled without reading them (first start: no replay)."""
        self._db.executemany(
            "INSERT OR IGNORE INTO jobs (job_id, received, statuses, finished, quiet, changed)"
            " VALUES (?, NULL, '', 1, 0, 0)",
            ((job_id,) for job_id in job_ids),
        )

    def finished_between(self, low: int, high: int) -> set[int]:
        """Ids in [low, high] of jobs already handled to the end (an archive folder's range)."""
        rows = self._db.execute(
            "SELECT job_id FROM jobs WHERE job_id BETWEEN ? AND ? AND finished = 1",
            (low, high),
        )
        return {row[0] for row in rows}

    def quiet_since(self, cutoff: int) -> list[int]:
        """Jobs only seen (not published by us) that changed at or after `cutoff`."""
        rows = self._db.execute(
            "SELECT job_id FROM jobs WHERE quiet = 1 AND changed >= ? ORDER BY job_id",
            (cutoff,),
        )
        return [row[0] for row in rows]

    def clear_quiet(self) -> None:
        self._db.execute("UPDATE jobs SET quiet = 0 WHERE quiet = 1")

    def reset(self) -> None:
        """Forget every job (the cluster was re-created: its job ids start again)."""
        self._db.execute("DELETE FROM jobs")
        self._db.execute("DELETE FROM meta WHERE key != 'schema_version'")

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
