import json

import pytest
from consumer_helpers import incoming, op
from unit_helpers import DATA

from ganeti_ext.consumer import reconcile, state

# Captured from the lab: snf-cap2 running (net1 + a routed NIC, one 64 MiB file disk),
# snf-cap3 created with --no-start (stopped, diskless).
BULK = json.loads((DATA / "rapi-instances-bulk.json").read_text())


@pytest.fixture
def live():
    return reconcile.ganeti_instances(BULK)


@pytest.fixture
def db():
    database = state.StateDB(":memory:")
    yield database
    database.close()


def nics_of(live, name):
    return [
        {key: nic[key] for key in state.NIC_KEYS if key in nic} | {"firewall": None}
        for nic in live[name].nics
    ]


def in_sync(db, live):
    """Put the DB into the state Ganeti reports (via messages, as the consumer would)."""
    for t, name in enumerate(("snf-cap2", "snf-cap3"), start=1):
        body = op(
            instance=name, t=t, instance_nics=nics_of(live, name), instance_disks=live[name].disks
        )
        db.apply(incoming(body))
    db.apply(incoming(op(instance="snf-cap3", operation="OP_INSTANCE_SHUTDOWN", t=9)))


def test_rapi_records(live):
    cap2, cap3 = live["snf-cap2"], live["snf-cap3"]
    assert (cap2.state, cap2.status) == (state.STARTED, "running")
    assert (cap3.state, cap3.status) == (state.STOPPED, "ADMIN_down")
    assert [(nic["network"], nic["ip"], nic["mode"]) for nic in cap2.nics] == [
        ("net1", "198.51.100.4", "bridged"),
        (None, "192.0.0.9", "routed"),
    ]
    assert cap2.nics[1]["name"] == "backend"
    assert [disk["size"] for disk in cap2.disks] == [64] and cap3.disks == []


@pytest.mark.parametrize(
    "status, expected",
    [("running", "STARTED"), ("ADMIN_down", "STOPPED"), ("ERROR_nodedown", None)],
)
def test_ganeti_state(status, expected):
    entry = {"status": status, "oper_state": status == "running"}
    assert reconcile.ganeti_state(entry) == expected


def test_in_sync_has_no_findings(db, live):
    in_sync(db, live)
    report = reconcile.diff(db.instances(include_deleted=True), live)
    assert report.findings == [] and report.checked == 2


def test_orphan_stale_and_unsynced(db, live):
    in_sync(db, live)
    db.apply(incoming(op(instance="snf-cap2", operation="OP_INSTANCE_SHUTDOWN", t=20)))
    db.apply(incoming(op(instance="snf-gone", t=21)))
    db.upsert_instance("snf-cap3", deleted=1)
    report = reconcile.diff(db.instances(include_deleted=True), live)
    found = {(finding.kind, finding.name) for finding in report.findings}
    assert found == {
        ("stale", "snf-cap2"),
        ("orphan", "snf-cap3"),
        ("unsynced", "snf-gone"),
    }
    (stale,) = report.of_kind("stale")
    assert stale.differences == ("state STOPPED in the database, STARTED in Ganeti",)
    assert report.summary() == {"checked": 3, "stale": 1, "orphan": 1, "unsynced": 1}


def test_nic_and_disk_differences_are_stale(db, live):
    in_sync(db, live)
    nics = nics_of(live, "snf-cap2")
    nics[0]["ip"] = "198.51.100.99"
    db.upsert_instance("snf-cap2", nics=nics, disks=[{"name": None, "size": 32, "uuid": "x"}])
    (finding,) = reconcile.diff(db.instances(include_deleted=True), live).findings
    assert finding.kind == "stale" and len(finding.differences) == 2
    assert "NICs differ" in finding.differences[0]


def test_instance_being_built_is_not_judged(db, live):
    db.apply(incoming(op(instance="snf-new", status="running", t=1)))
    assert reconcile.diff(db.instances(include_deleted=True), live).of_kind("unsynced") == []


def test_fix_makes_the_db_agree(db, live):
    in_sync(db, live)
    db.apply(incoming(op(instance="snf-cap2", operation="OP_INSTANCE_SHUTDOWN", t=20)))
    db.apply(incoming(op(instance="snf-gone", t=21)))
    db.upsert_instance("snf-cap3", deleted=1)
    reconcile.fix(db, reconcile.diff(db.instances(include_deleted=True), live))
    assert reconcile.diff(db.instances(include_deleted=True), live).findings == []
    assert db.instance("snf-gone").deleted and db.instance("snf-gone").state == state.DESTROYED
    assert db.instance("snf-cap3").state == state.STOPPED
    assert db.instance("snf-cap2").state == state.STARTED


def test_fix_fills_an_empty_db(db, live):
    report = reconcile.diff([], live)
    assert len(report.of_kind("orphan")) == 2
    reconcile.fix(db, report)
    assert [row.name for row in db.instances()] == ["snf-cap2", "snf-cap3"]
    assert db.instance("snf-cap2").nics[0]["network"] == "net1"


def test_password_file(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\n")
    assert reconcile.read_password(path) == "s3cret"
    path.write_text("\n")
    with pytest.raises(reconcile.GanetiExtError):
        reconcile.read_password(path)
