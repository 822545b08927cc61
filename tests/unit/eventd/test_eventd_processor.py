"""The processor: live watching fills in skipped statuses, byte-identical to seeing them."""

from __future__ import annotations

import copy
import json

import pytest
from unit_helpers import DATA

from ganeti_ext.eventd.processor import Processor
from ganeti_ext.eventd.state import StateDB
from ganeti_ext.events import messages
from ganeti_ext.events.instances import instance_details
from ganeti_ext.events.jobfile import parse_job, read_job_file

JOBS = DATA / "jobs"
CONFIG = json.loads((JOBS / "config.data.json").read_text())
CONTEXT = messages.Context(
    cluster="cluster.ganeti.test",
    instance_details=lambda name: instance_details(CONFIG, name),
)
FULL = ("queued", "waiting", "running", "success")
STARTUP = [read_job_file(str(JOBS / f"instance-startup.{n}.json")) for n in range(1, 7)]


def create_versions():
    """instance-create-success as Ganeti wrote it on its way: queued, waiting, running, success."""
    final = json.loads((JOBS / "instance-create-success.json").read_text())
    op = final["ops"][0]
    versions = []
    for status in ("queued", "waiting", "running"):
        raw = copy.deepcopy(final)
        raw["end_timestamp"] = None
        step = raw["ops"][0]
        step.update(status=status, result=None, end_timestamp=None)
        if status == "queued":
            raw["start_timestamp"] = None
            step.update(start_timestamp=None, exec_timestamp=None, log=[])
        elif status == "waiting":
            step.update(exec_timestamp=None, log=[])
        else:  # running, with half of its log written so far
            step["log"] = op["log"][: len(op["log"]) // 2]
        versions.append(parse_job(json.dumps(raw)))
    versions.append(parse_job(json.dumps(final)))
    return versions


CREATE = create_versions()


class Run:
    """A processor over a fresh state DB and outbox."""

    def __init__(self, root):
        from ganeti_ext.spool import Spool

        self.outbox = Spool(root / "outbox", fsync=False)
        self.state = StateDB(root / "state.sqlite")
        self.processor = Processor(self.state, self.outbox, lambda: CONTEXT)

    def live(self, *versions):
        for job in versions:
            self.processor.handle(job, publish=True, history=True)
        return self

    def files(self):
        """The outbox's message files' content, oldest first."""
        return [path.read_bytes() for path in self.outbox.pending()]

    def statuses(self):
        return [json.loads(data)["body"]["status"] for data in self.files()]


@pytest.mark.parametrize("versions", [STARTUP, CREATE], ids=["startup", "create"])
def test_first_seen_as_success_is_byte_identical_to_seeing_every_version(tmp_path, versions):
    stepwise = Run(tmp_path / "a").live(*versions)
    jumped = Run(tmp_path / "b").live(versions[-1])
    assert stepwise.statuses() == ["queued", "waiting", "running", "success"]
    assert jumped.files() == stepwise.files()
    ids = [json.loads(data)["message_id"] for data in jumped.files()]
    job_id = versions[-1].id
    assert ids == [
        f"cluster.ganeti.test:{job_id}:0:{status}"
        for status in ("queued", "waiting", "running", "success")
    ]


def test_seen_waiting_then_success_adds_running(tmp_path):
    stepwise = Run(tmp_path / "a").live(*CREATE)
    run = Run(tmp_path / "b").live(CREATE[1])
    assert run.statuses() == ["queued", "waiting"]
    run.live(CREATE[3])
    assert run.statuses() == ["queued", "waiting", "running", "success"]
    assert run.files() == stepwise.files()


def test_running_message_carries_the_last_log_entry_before_its_time(tmp_path):
    run = Run(tmp_path).live(CREATE[3])
    bodies = [json.loads(data)["body"] for data in run.files()]
    op = CREATE[3].ops[0]
    running = bodies[2]
    assert running["status"] == "running"
    assert running["event_time"] == list(op.exec_timestamp)
    before = [entry.text for entry in op.log if entry.timestamp <= op.exec_timestamp]
    assert running["logmsg"] == (before[-1] if before else None)
    assert running["result"] is None and "nics" not in running
    assert bodies[3]["logmsg"] == op.log[-1].text


def test_repeated_files_give_nothing_new(tmp_path):
    run = Run(tmp_path).live(STARTUP[3], STARTUP[3], STARTUP[5], STARTUP[5], STARTUP[5])
    assert run.statuses() == ["queued", "waiting", "running", "success"]


def test_catch_up_and_failover_keep_the_current_status_only(tmp_path):
    run = Run(tmp_path)
    run.processor.handle(STARTUP[1], publish=True)
    run.processor.handle(STARTUP[5], publish=True)
    assert run.statuses() == ["queued", "success"]
    run.processor.handle(STARTUP[5], publish=True, forget_recorded=True)
    assert run.statuses() == ["queued", "success", "success"]


def test_a_live_batch_is_flushed_once_its_oldest_change_waited_max_delay(tmp_path, monkeypatch):
    import ganeti_ext.eventd.processor as processor_module

    clock = [100.0]
    monkeypatch.setattr(processor_module.time, "monotonic", lambda: clock[0])
    from ganeti_ext.eventd.outbox import Outbox

    run = Run(tmp_path)
    run.outbox = run.processor.outbox = Outbox(tmp_path / "outbox", fsync=False)
    woken = []
    run.processor.batch_size, run.processor.max_delay = 200, 0.005
    run.processor.on_spooled = lambda: woken.append(len(run.outbox.pending()))
    run.live(STARTUP[0])
    clock[0] += 0.002
    run.live(CREATE[0])
    assert run.files() == [] and woken == []  # still batching
    clock[0] += 0.004
    run.live(CREATE[3])  # the first change has now waited 6 ms: flush all
    (batch,) = run.outbox.pending()
    statuses = [(m.body["jobId"], m.body["status"]) for m in run.outbox.load_all(batch)]
    job = CREATE[3].id
    assert statuses == [(33, "queued"), *((job, s) for s in FULL)]
    assert woken == [1]  # one batch file, and the drainer was woken once it was durable
    assert run.state.get(CREATE[3].id).statuses == ("success",)
