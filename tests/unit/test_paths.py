from pathlib import Path

from ganeti_ext import paths


def test_default_paths_are_the_installed_locations():
    assert paths.DEFAULT.ganeti_queue_dir == Path("/var/lib/ganeti/queue")
    assert paths.DEFAULT.archipelago_conf == Path(paths.ARCHIPELAGO_CONF)
    assert paths.DEFAULT.archipelago_log_file.parent == Path(paths.GANETI_EXTSTORAGE_LOG_DIR)


def test_under_reroots_every_path(tmp_path):
    rerooted = paths.DEFAULT.under(tmp_path)
    assert rerooted.nfdhcpd_conf == tmp_path / "etc/nfdhcpd/nfdhcpd.conf"
    for name, value in vars(rerooted).items():
        assert value.is_relative_to(tmp_path), name
        assert value == tmp_path / getattr(paths.DEFAULT, name).relative_to("/")
