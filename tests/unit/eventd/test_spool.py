"""The on-disk spool: durable, ordered, safe from many writers, corrupt files set aside."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from ganeti_ext.spool import OutgoingMessage, Spool, SpoolError


def message(number: int) -> OutgoingMessage:
    return OutgoingMessage(
        routing_key="ganeti.snf.event.op",
        body={"type": "ganeti-op-status", "n": number, "z": [1, 2], "a": "x"},
        message_id=f"cluster:{number}:0:success",
    )


def test_put_then_load_round_trips(tmp_path):
    spool = Spool(tmp_path / "spool")
    path = spool.put(message(1))
    assert path.parent == tmp_path / "spool"
    assert path.name.endswith(".msg")
    assert spool.load(path) == message(1)


def test_pending_keeps_put_order(tmp_path):
    spool = Spool(tmp_path, fsync=False)
    paths = [spool.put(message(n)) for n in range(50)]
    assert spool.pending() == paths
    assert [spool.load(p).body["n"] for p in spool.pending()] == list(range(50))


def test_pending_ignores_temporary_and_foreign_files(tmp_path):
    spool = Spool(tmp_path, fsync=False)
    kept = spool.put(message(1))
    (tmp_path / ".00000000000000000001-1-000001.msg.tmp").write_text("half")
    (tmp_path / "README").write_text("junk")
    (tmp_path / "bad").mkdir()
    assert spool.pending() == [kept]


def test_done_removes_and_is_idempotent(tmp_path):
    spool = Spool(tmp_path, fsync=False)
    path = spool.put(message(1))
    spool.done(path)
    spool.done(path)
    assert spool.pending() == []


def test_same_message_is_byte_identical(tmp_path):
    spool = Spool(tmp_path, fsync=False)
    first, second = spool.put(message(7)), spool.put(message(7))
    assert first != second
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{trunc",
        b"[]",
        b'{"v": 1}',
        b'{"v":1,"routing_key":"k","message_id":"i","body":[]}',
        b"\xff\xfe",
    ],
    ids=["empty", "truncated", "list", "no-fields", "body-not-object", "not-utf8"],
)
def test_corrupt_file_raises_and_can_be_quarantined(tmp_path, content):
    spool = Spool(tmp_path, fsync=False)
    path = tmp_path / "00000000000000000001-1-000001.msg"
    path.write_bytes(content)
    assert spool.pending() == [path]
    with pytest.raises(SpoolError):
        spool.load(path)
    spool.quarantine(path, "not a message")
    assert spool.pending() == []
    assert (tmp_path / "bad" / path.name).read_bytes() == content
    assert "not a message" in (tmp_path / "bad" / f"{path.name}.reason").read_text()


def _writer(directory: str, worker: int) -> None:
    spool = Spool(directory, fsync=False)
    for n in range(100):
        spool.put(message(worker * 1000 + n))


def test_many_processes_at_once_lose_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_writer, args=(str(tmp_path), w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    spool = Spool(tmp_path)
    numbers = sorted(spool.load(p).body["n"] for p in spool.pending())
    assert numbers == sorted(w * 1000 + n for w in range(4) for n in range(100))
    # Each writer's messages stay in its own order.
    for w in range(4):
        mine = [spool.load(p).body["n"] for p in spool.pending()]
        mine = [n for n in mine if n // 1000 == w]
        assert mine == sorted(mine)


def test_unwritable_directory_is_a_spool_error(tmp_path):
    target = tmp_path / "file"
    target.write_text("")
    with pytest.raises(SpoolError, match="cannot write"):
        Spool(target / "sub").put(message(1))


def test_files_are_not_world_readable(tmp_path):
    path = Spool(tmp_path / "s").put(message(1))
    assert os.stat(path).st_mode & 0o007 == 0


def test_put_many_keeps_order_and_content(tmp_path):
    spool = Spool(tmp_path)
    paths = spool.put_many([message(n) for n in range(20)])
    assert spool.pending() == paths
    assert [spool.load(p).body["n"] for p in paths] == list(range(20))
    assert spool.put_many([]) == []
