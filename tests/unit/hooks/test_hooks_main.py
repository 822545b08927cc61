import pytest
from test_hooks_neighbours import FakeIp
from test_hooks_notify import captured
from unit_helpers import env_fixture

from ganeti_ext import paths
from ganeti_ext.hooks import main as hook_main
from ganeti_ext.spool import Spool


@pytest.fixture
def root(tmp_path):
    layout = paths.DEFAULT.under(tmp_path)
    layout.ganeti_data_dir.mkdir(parents=True)
    layout.snf_network_state_dir.mkdir(parents=True)  # snf-network ran on this node
    (layout.ganeti_data_dir / "ssconf_master_node").write_text("node1.ganeti.test\n")
    return layout


def context(layout, me="node1.ganeti.test", ip=None):
    return hook_main.HookContext(
        paths=layout, runner=ip or FakeIp(), clock=lambda: 1700000000.5, own_name=lambda: me
    )


def spooled(layout):
    spool = Spool(layout.eventd_spool_dir)
    return [spool.load(path) for path in spool.pending()]


def test_master_spools_one_notification(root):
    outcome = hook_main.run(captured("network-add"), context(root))
    (message,) = spooled(root)
    assert outcome.spooled == message.message_id
    assert message.body["network"] == "snf-cap-net"
    assert message.body["node"] == "node1.ganeti.test"


def test_the_spool_is_where_eventds_configuration_puts_it(root, tmp_path):
    """A changed [eventd] state_dir moves eventd's spool: the hook follows it."""
    moved = tmp_path / "elsewhere"
    root.eventd_conf.parent.mkdir(parents=True, exist_ok=True)
    root.eventd_conf.write_text(f"[eventd]\nstate_dir = {moved}\n")
    outcome = hook_main.run(captured("network-add"), context(root))
    assert len(Spool(moved / "spool").pending()) == 1
    assert outcome.spooled and spooled(root) == []


def test_a_broken_eventd_configuration_still_spools_to_the_default(root, caplog):
    root.eventd_conf.parent.mkdir(parents=True, exist_ok=True)
    root.eventd_conf.write_text("[eventd]\nno_such_key = 1\n")
    outcome = hook_main.run(captured("network-add"), context(root))
    assert outcome.spooled and len(spooled(root)) == 1
    assert "no_such_key" in caplog.text


def test_other_nodes_do_not_report(root):
    outcome = hook_main.run(captured("network-add"), context(root, "node2.ganeti.test"))
    assert outcome.spooled is None and spooled(root) == []


def test_pre_phase_does_nothing(root):
    outcome = hook_main.run(env_fixture("hook-instance-start-pre"), context(root))
    assert outcome.skipped == "pre phase" and spooled(root) == []


def test_old_primary_cleans_proxy_neighbours_but_does_not_report(root):
    ip = FakeIp()
    outcome = hook_main.run(
        env_fixture("hook-instance-migrate-post"), context(root, "node1.ganeti.test", ip)
    )
    # node1 is master and old primary here: it reports and cleans.
    assert outcome.spooled and len(outcome.cleaned) == 2
    (root.ganeti_data_dir / "ssconf_master_node").write_text("node3.ganeti.test\n")
    ip = FakeIp()
    outcome = hook_main.run(env_fixture("hook-instance-migrate-post"), context(root, ip=ip))
    assert outcome.spooled is None and len(outcome.cleaned) == 2


def test_new_primary_leaves_neighbours_alone(root):
    ip = FakeIp()
    outcome = hook_main.run(
        env_fixture("hook-instance-migrate-post"), context(root, "node2.ganeti.test", ip)
    )
    assert outcome.cleaned == [] and ip.calls == []


def test_main_exits_zero_and_logs_when_the_spool_cannot_be_written(root, clean_logging):
    root.eventd_spool_dir.parent.mkdir(parents=True)
    root.eventd_spool_dir.write_text("a file where the spool directory should be")
    with pytest.raises(SystemExit) as exit_:
        hook_main.main(captured("network-add"), context(root))
    assert exit_.value.code == 0
    log = (root.ganeti_ext_log_dir / "hooks.log").read_text()
    assert "notification not spooled" in log


def test_main_exits_zero_on_a_bad_environment(root, clean_logging):
    env = captured("network-add")
    env["GANETI_HOOKS_VERSION"] = "two"
    with pytest.raises(SystemExit) as exit_:
        hook_main.main(env, context(root))
    assert exit_.value.code == 0
    assert "GANETI_HOOKS_VERSION" in (root.ganeti_ext_log_dir / "hooks.log").read_text()


def test_main_survives_a_bug(root, clean_logging, monkeypatch):
    def broken(*_args, **_kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(hook_main.notify, "build", broken)
    with pytest.raises(SystemExit) as exit_:
        hook_main.main(captured("network-add"), context(root))
    assert exit_.value.code == 0
    assert "this is a bug" in (root.ganeti_ext_log_dir / "hooks.log").read_text()


def test_shim_starts_fast_and_quietly():
    # The real shim in a subprocess, as Ganeti runs it. The pre phase, so that it touches
    # nothing on this machine (the real spool and log): start-up and parsing only.
    import subprocess
    import sys

    from unit_helpers import REPO

    env = {**env_fixture("hook-instance-start-pre"), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "hooks" / "snf-ganeti-hook")],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=10,
    )
    assert proc.returncode == 0
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "me, cleans",
    [("node1.ganeti.test", True), ("node2.ganeti.test", False)],
    ids=["old-primary", "new-primary"],
)
def test_captured_migrate_cleans_only_on_the_old_primary(root, me, cleans):
    ip = FakeIp(show4="198.51.100.2 dev br0 proxy\n", show6="")
    outcome = hook_main.run(captured("instance-migrate"), context(root, me, ip))
    assert [str(entry.address) for entry in outcome.cleaned] == (["198.51.100.2"] if cleans else [])
