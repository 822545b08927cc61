"""The binding table and how inotify events change it (files in a temp dir, no inotify)."""

from __future__ import annotations

from ganeti_ext.nfdhcpd import table as tbl
from ganeti_ext.nfdhcpd.table import BindingTable, apply_events

MAC = bytes.fromhex("aa0001000001")


def binding(mac: str = "aa:00:01:00:00:01", indev: str = "", ip: str = "198.51.100.20") -> str:
    return f"MAC={mac}\nHOSTNAME=vm\nIP={ip}\n" + (f"INDEV={indev}\n" if indev else "")


class FakeInotify:
    def __init__(self) -> None:
        self.rewatched = 0

    def watch(self) -> None:
        self.rewatched += 1


def test_rescan_loads_good_files_and_reports_bad_ones(tmp_path):
    (tmp_path / "tap1").write_text(binding())
    (tmp_path / "tap2").write_text("MAC=nonsense\nHOSTNAME=vm\n")
    (tmp_path / ".tap3.tmp").write_text(binding("aa:00:01:00:00:03"))  # a writer's temp file
    t = BindingTable(tmp_path)
    t.rescan()
    assert len(t) == 1 and t.get("tap1").ip.exploded == "198.51.100.20"
    assert set(t.bad) == {"tap2"} and "MAC" in t.bad["tap2"]
    assert any("tap2: BAD" in line for line in t.dump())


def test_mac_fallback_index_follows_replace_and_remove(tmp_path):
    (tmp_path / "tap1").write_text(binding(indev="br0"))
    t = BindingTable(tmp_path)
    t.rescan()
    assert t.by_mac("br0", MAC) is t.get("tap1")
    assert t.by_mac("br1", MAC) is None
    (tmp_path / "tap1").write_text(binding(indev="br1"))
    t.load("tap1")
    assert t.by_mac("br0", MAC) is None and t.by_mac("br1", MAC) is t.get("tap1")
    t.remove("tap1")
    assert t.by_mac("br1", MAC) is None and t.get("tap1") is None


def test_bad_rewrite_drops_the_old_binding(tmp_path):
    (tmp_path / "tap1").write_text(binding(indev="br0"))
    t = BindingTable(tmp_path)
    t.rescan()
    (tmp_path / "tap1").write_text("HOSTNAME=vm\n")
    assert t.load("tap1") is None
    assert t.get("tap1") is None and t.by_mac("br0", MAC) is None and "tap1" in t.bad


def test_events_add_replace_and_remove(tmp_path):
    t = BindingTable(tmp_path)
    t.rescan()
    (tmp_path / "tap1").write_text(binding())
    (tmp_path / "tap2").write_text(binding("aa:00:01:00:00:02", ip="198.51.100.21"))
    events = [(tbl.IN_CLOSE_WRITE, "tap1"), (tbl.IN_MOVED_TO, "tap2")]
    assert apply_events(t, events, FakeInotify())
    assert {b.tap for b in t} == {"tap1", "tap2"}
    (tmp_path / "tap1").unlink()
    assert apply_events(t, [(tbl.IN_DELETE, "tap1"), (tbl.IN_MOVED_FROM, "tap2")], FakeInotify())
    assert len(t) == 0


def test_temp_files_and_empty_batches_change_nothing(tmp_path):
    t = BindingTable(tmp_path)
    (tmp_path / ".tap1.XXXX").write_text(binding())
    assert not apply_events(t, [], FakeInotify())
    before = t.generation
    apply_events(t, [(tbl.IN_CLOSE_WRITE, ".tap1.XXXX"), (tbl.IN_CLOSE_WRITE, "")], FakeInotify())
    assert len(t) == 0 and t.generation == before


def test_a_file_gone_before_it_is_read_is_not_reported_bad(tmp_path):
    t = BindingTable(tmp_path)
    assert apply_events(t, [(tbl.IN_CLOSE_WRITE, "tap1")], FakeInotify())
    assert len(t) == 0 and t.bad == {}


def test_overflow_rescans_and_a_replaced_directory_is_watched_again(tmp_path):
    t = BindingTable(tmp_path)
    t.rescan()
    (tmp_path / "tap1").write_text(binding())  # its event was lost in the overflow
    watcher = FakeInotify()
    assert apply_events(t, [(tbl.IN_Q_OVERFLOW, "")], watcher)
    assert t.get("tap1") is not None and watcher.rewatched == 0
    (tmp_path / "tap1").unlink()
    assert apply_events(t, [(tbl.IN_IGNORED, ""), (tbl.IN_DELETE_SELF, "")], watcher)
    assert len(t) == 0 and watcher.rewatched == 1


def test_generation_moves_on_every_change(tmp_path):
    t = BindingTable(tmp_path)
    (tmp_path / "tap1").write_text(binding())
    seen = [t.generation]
    t.load("tap1")
    seen.append(t.generation)
    t.remove("tap1")
    seen.append(t.generation)
    assert seen == sorted(set(seen))


def test_written_bindings_are_reported_for_an_immediate_ra(tmp_path):
    t = BindingTable(tmp_path)
    (tmp_path / "tap1").write_text(binding())
    loaded: list = []
    apply_events(t, [(tbl.IN_CLOSE_WRITE, "tap1"), (tbl.IN_DELETE, "tap9")], FakeInotify(), loaded)
    assert [b.tap for b in loaded] == ["tap1"]
    loaded.clear()
    apply_events(t, [(tbl.IN_Q_OVERFLOW, "")], FakeInotify(), loaded)
    assert loaded == []  # a rescan leaves the guests to the periodic round


def test_daemon_sends_an_ra_as_soon_as_an_ipv6_binding_appears(tmp_path):
    from ganeti_ext.nfdhcpd import config
    from ganeti_ext.nfdhcpd.daemon import Daemon

    cfg = config.loads(f"[general]\ndatapath = {tmp_path}\n")
    daemon = Daemon(cfg)
    sent: list[tuple[str, bytes]] = []

    class FakeSender:
        sockets: dict = {}

        def send(self, device, frame):
            sent.append((device, frame))
            return True

    daemon.sender = FakeSender()  # type: ignore[assignment]
    daemon.responder.mac_of = lambda _dev: bytes.fromhex("020000000001")
    (tmp_path / "tap1").write_text(binding() + "SUBNET6=2001:db8:100::/64\n")
    (tmp_path / "tap2").write_text(binding("aa:00:01:00:00:02"))  # IPv4 only: no RA
    daemon.bindings_changed(
        [(tbl.IN_CLOSE_WRITE, "tap1"), (tbl.IN_CLOSE_WRITE, "tap2")], FakeInotify()
    )
    assert [device for device, _ in sent] == ["tap1"]
    assert sent[0][1][14 + 40] == 134  # an ICMPv6 router advertisement
