import pytest
from consumer_helpers import hook, incoming, network, nic, op, progress

from ganeti_ext.consumer import state
from ganeti_ext.consumer.state import APPLIED, DUPLICATE, STALE


@pytest.fixture
def db(tmp_path):
    database = state.StateDB(tmp_path / "state.db", clock=lambda: 1000.0)
    yield database
    database.close()


def apply(db, *bodies):
    return [db.apply(incoming(body)) for body in bodies]


def test_create_lifecycle_reaches_started_with_nics_and_disks(db):
    apply(
        db,
        op(status="queued", t=1),
        op(status="running", t=2),
        op(
            status="success",
            t=3,
            instance_nics=[nic()],
            instance_disks=[{"name": None, "size": 1024, "uuid": "d1"}],
            instance_hvparams={"kvm_path": "/usr/bin/qemu-system-x86_64"},
        ),
    )
    row = db.instance("snf-1")
    assert row.state == state.STARTED and not row.deleted
    assert row.nics == [nic()] and row.disks[0]["size"] == 1024
    assert row.hvparams == {"kvm_path": "/usr/bin/qemu-system-x86_64"}
    assert (row.last_job_id, row.last_status, row.event_time) == ("7", "success", (3, 0))


def test_create_in_progress_is_build(db):
    apply(db, op(status="running", t=2))
    assert db.instance("snf-1").state == state.BUILD


@pytest.mark.parametrize(
    "operation, expected",
    [
        ("OP_INSTANCE_SHUTDOWN", state.STOPPED),
        ("OP_INSTANCE_STARTUP", state.STARTED),
        ("OP_INSTANCE_REBOOT", state.STARTED),
        ("OP_INSTANCE_SET_PARAMS", state.STARTED),  # unchanged
        ("OP_INSTANCE_MIGRATE", state.STARTED),  # unchanged
    ],
)
def test_opcode_success_maps_to_state(db, operation, expected):
    apply(db, op(t=1), op(operation=operation, t=2))
    assert db.instance("snf-1").state == expected


def test_remove_success_deletes(db):
    apply(db, op(t=1), op(operation="OP_INSTANCE_REMOVE", t=2))
    row = db.instance("snf-1")
    assert row.deleted and row.state == state.DESTROYED
    assert db.instances() == [] and len(db.instances(include_deleted=True)) == 1


def test_remove_of_an_instance_ganeti_no_longer_knows_deletes_too(db):
    apply(
        db,
        op(t=1),
        op(
            operation="OP_INSTANCE_REMOVE",
            status="error",
            t=2,
            logmsg="Instance 'snf-1' not known",
        ),
    )
    assert db.instance("snf-1").deleted


def test_failed_create_is_error_with_the_reason(db):
    apply(db, op(status="running", t=1), op(status="error", t=2, logmsg="no free IP"))
    row = db.instance("snf-1")
    assert row.state == state.ERROR
    assert row.error == "OP_INSTANCE_CREATE error: no free IP"


def test_failed_shutdown_keeps_state_and_records_error(db):
    apply(db, op(t=1), op(operation="OP_INSTANCE_SHUTDOWN", status="error", t=2, logmsg="x"))
    row = db.instance("snf-1")
    assert row.state == state.STARTED and "OP_INSTANCE_SHUTDOWN error" in row.error


def test_same_message_twice_is_applied_once(db):
    message = incoming(op(t=1), message_id="same")
    assert db.apply(message) == APPLIED
    assert db.apply(message) == DUPLICATE
    assert db.counters()[DUPLICATE] == 1 and db.seen_count() == 1


def test_older_message_is_dropped_and_counted(db):
    results = apply(
        db,
        op(t=1),
        op(operation="OP_INSTANCE_SHUTDOWN", t=5),
        op(operation="OP_INSTANCE_STARTUP", t=3),  # arrives late: older than the shutdown
    )
    assert results == [APPLIED, APPLIED, STALE]
    assert db.instance("snf-1").state == state.STOPPED
    assert db.counters()[STALE] == 1


def test_order_is_per_instance(db):
    assert apply(db, op(instance="snf-a", t=9), op(instance="snf-b", t=1)) == [APPLIED, APPLIED]


def test_microseconds_order_too(db):
    results = apply(
        db,
        op(t=1),
        op(operation="OP_INSTANCE_SHUTDOWN", t=(7, 500)),
        op(operation="OP_INSTANCE_STARTUP", t=(7, 499)),
    )
    assert results[-1] == STALE


def test_reused_name_starts_clean(db):
    apply(
        db,
        op(t=1, instance_nics=[nic()]),
        op(operation="OP_INSTANCE_REMOVE", t=2),
        op(status="running", t=3),
    )
    row = db.instance("snf-1")
    assert not row.deleted and row.state == state.BUILD and row.nics == []


def test_set_params_merges_changed_parameters(db):
    apply(
        db,
        op(t=1, job_fields={"beparams": {"maxmem": 64, "vcpus": 1}}),
        op(operation="OP_INSTANCE_SET_PARAMS", t=2, job_fields={"beparams": {"vcpus": 2}}),
    )
    assert db.instance("snf-1").beparams == {"maxmem": 64, "vcpus": 2}


def test_message_about_an_unknown_instance_creates_it_unknown(db):
    apply(db, op(operation="OP_INSTANCE_SET_PARAMS", t=1))
    assert db.instance("snf-1").state == state.UNKNOWN


def test_hook_refreshes_nics_without_moving_job_order(db):
    apply(db, op(t=1))
    assert apply(db, hook(t=2, status="up", nics=[nic(ip="198.51.100.9")])) == [APPLIED]
    row = db.instance("snf-1")
    assert row.nics[0]["ip"] == "198.51.100.9" and row.ganeti_status == "up"
    assert row.event_time == (1, 0)
    # The job's own messages (the hook ran before its job ended) still apply.
    assert apply(db, op(operation="OP_INSTANCE_SET_PARAMS", t=3)) == [APPLIED]


def test_hook_older_than_the_last_job_message_is_stale(db):
    apply(db, op(t=5))
    assert apply(db, hook(t=4, nics=[])) == [STALE]


def test_rename_hook_moves_the_row(db):
    apply(db, op(t=1, instance_nics=[nic()]))
    apply(db, hook(t=2, hpath="instance-rename", new_name="snf-2", operation="OP_INSTANCE_RENAME"))
    assert db.instance("snf-1") is None
    assert db.instance("snf-2").nics == [nic()]


def test_network_lifecycle(db):
    apply(
        db,
        network(status="running", t=1),
        network(t=2),
        network(
            operation="OP_NETWORK_CONNECT",
            t=3,
            job_fields={
                "subnet": None,
                "gateway": None,
                "add_reserved_ips": None,
                "remove_reserved_ips": None,
                "group_name": "default",
            },
        ),
    )
    row = db.network("snf-net-1")
    assert row["state"] == "ACTIVE" and row["subnet"] == "198.51.100.0/24"
    assert row["groups"] == ["default"]
    apply(db, network(operation="OP_NETWORK_REMOVE", t=4))
    assert db.network("snf-net-1")["deleted"] == 1


def test_network_rename_of_ganeti_3_1(db):
    rename = network(
        operation="OP_NETWORK_RENAME",
        t=3,
        job_fields={"subnet": None, "gateway": None, "add_reserved_ips": None,
                    "remove_reserved_ips": None, "group_name": None, "new_name": "snf-net-2"},
    )  # fmt: skip
    apply(db, network(t=2), rename)
    assert db.network("snf-net-2")["state"] == "ACTIVE"
    assert db.network("snf-net-1") is None
    apply(db, {**rename, "jobId": 10})  # replayed: the rename stays done
    assert db.network("snf-net-2")["subnet"] == "198.51.100.0/24"


def test_progress_keeps_the_latest(db):
    results = apply(
        db,
        progress(t=1, progress=10.0, position=10, total=100),
        progress(t=3, progress=50.0, position=50, total=100),
        progress(t=2, progress=30.0, position=30, total=100),
        {
            "type": "image-helper",
            "instance": "snf-1",
            "event_time": [4, 0],
            "subtype": "task-start",
            "task": "FixPartitionTable",
        },
        {"type": "image-error", "instance": "snf-1", "event_time": [5, 0], "stderr": "boom"},
    )
    assert results == [APPLIED, APPLIED, STALE, APPLIED, APPLIED]
    row = db.progress("snf-1")
    assert row["copy_progress"] == 50.0 and row["task"] == "FixPartitionTable"
    assert row["error"] == "boom" and row["last_type"] == "image-error"


def test_heartbeat_and_cluster_status(db):
    apply(
        db,
        {"type": "eventd-heartbeat", "cluster": "c1"},
        {
            "type": "ganeti-cluster-status",
            "cluster": "c1",
            "operation": "OP_TAGS_SET",
            "status": "success",
            "jobId": 3,
            "event_time": [1, 0],
        },
    )
    row = db.cluster("c1")
    assert row["last_heartbeat"] == 1000.0 and row["last_operation"] == "OP_TAGS_SET"


def test_prune_seen(tmp_path):
    now = [1000.0]
    db = state.StateDB(tmp_path / "s.db", clock=lambda: now[0])
    db.apply(incoming(op(t=1)))
    now[0] = 1000.0 + 3600
    assert db.prune_seen(60) == 1 and db.seen_count() == 0


def test_state_survives_reopening(tmp_path):
    path = tmp_path / "s.db"
    first = state.StateDB(path)
    first.apply(incoming(op(t=1), message_id="x"))
    first.close()
    again = state.StateDB(path)
    assert again.apply(incoming(op(t=1), message_id="x")) == DUPLICATE
    assert again.instance("snf-1").state == state.STARTED


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:////var/lib/snf-events/state.db", "/var/lib/snf-events/state.db"),
        ("sqlite:///state.db", "state.db"),
        ("sqlite://", ":memory:"),
    ],
)
def test_db_url(url, path):
    assert state.db_path(url) == path


@pytest.mark.parametrize("url", ["postgres://x/y", "sqlite:///", "/tmp/x.db"])
def test_bad_db_url(url):
    with pytest.raises(state.StateError):
        state.db_path(url)
