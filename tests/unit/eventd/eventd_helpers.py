"""Scratch job queues for the eventd tests, made from captured job files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from unit_helpers import DATA

from ganeti_ext.eventd.daemon import Layout

JOBS = DATA / "jobs"


def scratch_layout(tmp_path: Path, *, archive_dir: bool = False) -> Layout:
    """eventd's directories under tmp_path, with the ssconf files saying which cluster
    and master; with `archive_dir`, the job queue and its archive exist already."""
    data = tmp_path / "ganeti"
    data.mkdir()
    (data / "ssconf_cluster_name").write_text("cluster.ganeti.test\n")
    (data / "ssconf_master_node").write_text("node1.ganeti.test\n")
    if archive_dir:
        (tmp_path / "queue" / "archive").mkdir(parents=True)
    return Layout(queue_dir=tmp_path / "queue", state_dir=tmp_path / "state", ganeti_data_dir=data)


def job_content(job_id: int, template: str = "instance-startup.6", **op_changes) -> dict:
    raw = json.loads((JOBS / f"{template}.json").read_text())
    raw["id"] = job_id
    raw["ops"][0].update(op_changes)
    return raw


def write_job(
    queue: Path,
    job_id: int,
    template: str = "instance-startup.6",
    *,
    archived: bool = False,
    **op_changes,
) -> Path:
    """Write a job file the way Ganeti does (temp file renamed into place)."""
    directory = queue / "archive" / str(job_id // 10000) if archived else queue
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"job-{job_id}"
    temporary = directory / f"job-{job_id}-1-1.tmp"
    temporary.write_text(json.dumps(job_content(job_id, template, **op_changes)))
    os.rename(temporary, final)
    return final


def archive(queue: Path, job_id: int) -> None:
    target = queue / "archive" / str(job_id // 10000)
    target.mkdir(parents=True, exist_ok=True)
    os.rename(queue / f"job-{job_id}", target / f"job-{job_id}")


class FakePublisher:
    """Records what was published, batch by batch; can be switched off to play a dead broker."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict, str]] = []
        self.batches: list[int] = []  # size of each confirmed batch
        self.down = False
        self.closed = 0

    def publish_many(self, messages):
        from ganeti_ext.amqp.publisher import PublishError

        if self.down:
            raise PublishError("no AMQP broker reachable: test says so")
        self.sent += [
            (routing_key, body, message_id) for routing_key, body, message_id, _ in messages
        ]
        self.batches.append(len(messages))

    def publish(self, routing_key, body, message_id=None):
        self.publish_many([(routing_key, body, message_id, None)])
        return message_id

    def close(self):
        self.closed += 1

    @property
    def ids(self) -> list[str]:
        return [message_id for _, _, message_id in self.sent]
