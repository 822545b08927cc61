"""The snf-image OS scripts up to the helper VM: parameters, refusals, export/import."""

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from unit_helpers import REPO, env_fixture, uncomment_documented

from ganeti_ext.environ import osapi
from ganeti_ext.errors import EnvError, ValidationError
from ganeti_ext.osdef import cli, config_url, settings, transfer
from ganeti_ext.paths import DEFAULT

OS_DIR = REPO / "os-definitions" / "snf-image"


@pytest.fixture
def root(tmp_path):
    """A node root: snf-image.conf with an empty helper directory, a disk file."""
    paths = DEFAULT.under(tmp_path)
    paths.snf_image_conf.parent.mkdir(parents=True)
    paths.snf_image_conf.write_text(
        f"[helper]\ndir = {tmp_path}/helper\n[progress]\nmonitor =\n"
        f"[images]\ndir = {tmp_path}/images\n"
    )
    (tmp_path / "images").mkdir()
    (tmp_path / "disk.img").write_bytes(bytes(1 << 20))
    return paths


def create_env(root, **changes):
    disk = str(root.snf_image_conf).split("/etc/")[0] + "/disk.img"
    env = env_fixture("os-create-ext") | {"DISK_0_PATH": disk}
    env.update(changes)
    return env


def test_create_without_a_built_helper_names_the_command_and_wipes_the_disk(root):
    env = create_env(root)
    disk = env["DISK_0_PATH"]
    with open(disk, "wb") as out:
        out.write(b"\xff" * (2 << 20))  # an image that must not boot unpersonalized
    with pytest.raises(ValidationError, match=r"run snf-image-update-helper"):
        cli.execute("create", env, paths=root)
    with open(disk, "rb") as written:
        assert written.read(2 << 20) == bytes(1 << 20) + b"\xff" * (1 << 20)


def test_create_refuses_a_missing_helper_before_writing_the_image(root):
    images = Path(str(root.snf_image_conf).split("/etc/")[0]) / "images"
    (images / "debian").write_bytes(b"\xff" * (1 << 20))
    env = create_env(root, OSP_IMG_ID="debian", OSP_IMG_FORMAT="diskdump")
    with pytest.raises(ValidationError, match=r"run snf-image-update-helper"):
        cli.execute("create", env, paths=root)
    assert Path(env["DISK_0_PATH"]).read_bytes() == bytes(1 << 20)  # nothing written


def test_exclude_all_tasks_needs_no_helper(root, caplog):
    env = create_env(root, OSP_IMG_PROPERTIES='{"EXCLUDE_ALL_TASKS": "yes"}')
    with caplog.at_level(logging.INFO):
        cli.execute("create", env, paths=root)
    assert "not personalized" in caplog.text and "s3cr3t" not in caplog.text


def test_foreign_images_are_refused_before_anything_is_written(root):
    env = create_env(root, OSP_IMG_PROPERTIES='{"OSFAMILY": "windows"}')
    with pytest.raises(ValidationError, match=r"OSFAMILY windows is not supported yet"):
        cli.execute("create", env, paths=root)


def test_create_needs_img_id_format_and_a_disk(root):
    env = create_env(root)
    del env["OSP_IMG_ID"]
    with pytest.raises(ValidationError, match=r"img_id: required"):
        cli.execute("create", env, paths=root)
    with pytest.raises(ValidationError, match=r"img_format: required"):
        cli.execute("create", create_env(root, OSP_IMG_ID="debian", OSP_IMG_FORMAT=""), paths=root)
    with pytest.raises(ValidationError, match=r"has no disks"):
        cli.execute("create", create_env(root, DISK_COUNT="0"), paths=root)
    with pytest.raises(ValidationError, match=r"image debian: not found in "):
        cli.execute("create", create_env(root, OSP_IMG_ID="debian"), paths=root)


def test_config_url_answers_are_checked_and_merged():
    fetched = config_url.parse(
        b'{"img_passwd": "pw", "img_properties": {"OSFAMILY": "linux"}, "auth_keys": "k"}'
    )
    assert fetched["img_properties"] == '{"OSFAMILY": "linux"}'
    merged = config_url.merged({"img_id": "x", "config_url": "https://c/1"}, fetched)
    assert merged == {"img_id": "x", **fetched}
    for body, message in ((b"[1]", "not a JSON object"), (b"{", "not JSON"),
                          (b'{"config_url": "x"}', "names config_url again")):  # fmt: skip
        with pytest.raises(ValidationError, match=message):
            config_url.parse(body)


def test_verify_checks_parameters(root):
    cli.execute("verify", env_fixture("os-verify"), ["parameters"], paths=root)
    cli.execute("verify", env_fixture("os-verify"), paths=root)
    bad = env_fixture("os-verify") | {"OSP_IMG_PASSWD": "x"}
    with pytest.raises(ValidationError, match=r"img_passwd and img_passwd_hash"):
        cli.execute("verify", bad, ["parameters"], paths=root)
    with pytest.raises(ValidationError, match=r"unknown check 'disks'"):
        cli.execute("verify", env_fixture("os-verify"), ["disks"], paths=root)
    with pytest.raises(ValidationError, match=r"image ubuntu: not found"):
        cli.execute("verify", env_fixture("os-verify") | {"OSP_IMG_ID": "ubuntu"}, paths=root)


def test_export_then_import_round_trips_a_disk_sparse(tmp_path):
    source, target = tmp_path / "source.img", tmp_path / "target.img"
    data = os.urandom(100_000) + bytes(3 << 20) + b"end"
    source.write_bytes(data)
    target.write_bytes(b"\xff" * len(data))  # old bytes: zeros must overwrite them
    export = env_fixture("os-export") | {
        "EXPORT_DISK_PATH": str(source),
        "DISK_0_PATH": str(source),
    }
    stream = io.BytesIO()
    transfer.export_disk(osapi.parse_export(export), stream)
    assert stream.getvalue() == data
    imported = env_fixture("os-export") | {
        "IMPORT_INDEX": "0",
        "IMPORT_DISK_PATH": str(target),
        "DISK_0_PATH": str(target),
    }
    stream.seek(0)
    transfer.import_disk(osapi.parse_import(imported), stream)
    assert target.read_bytes() == data
    assert target.stat().st_blocks * 512 < 1 << 20  # the zeros are holes
    stream = io.BytesIO(data + b"x")
    with pytest.raises(ValidationError, match=r"more than the disk's \d+ bytes"):
        transfer.import_disk(osapi.parse_import(imported), stream)


def test_bad_environment_names_the_variable(root):
    with pytest.raises(EnvError, match=r"^NIC_0_MAC: "):
        cli.execute("create", env_fixture("os-create-ext") | {"NIC_0_MAC": "x"}, paths=root)


def _run_shim(script, env, *args):
    return subprocess.run(
        [sys.executable, str(OS_DIR / script), *args],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=OS_DIR,
    )


def test_shim_failure_is_one_clear_line_without_secrets():
    env = env_fixture("os-create-ext") | {"OSP_IMG_ID": "../../etc/shadow"}
    proc = _run_shim("create", env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("snf-image-create: error: image name '../../etc/shadow'")
    assert "Traceback" not in proc.stderr and "s3cr3t" not in proc.stderr


def test_shim_success_logs_to_stderr_for_ganeti():
    proc = _run_shim("verify", env_fixture("os-verify"), "parameters")
    assert proc.returncode == 0, proc.stderr
    assert "OS parameters are valid" in proc.stderr
    assert "$6$" not in proc.stderr


@pytest.mark.parametrize("script", cli.SCRIPTS)
def test_each_script_is_an_executable_shim(script):
    shim = OS_DIR / script
    assert os.access(shim, os.X_OK)
    text = shim.read_text()
    assert text.startswith("#!/usr/bin/python3\n") and f'main("{script}")' in text
    assert len(text.splitlines()) <= 6


def test_definition_files():
    assert (OS_DIR / "ganeti_api_version").read_text() == "20\n"
    assert (OS_DIR / "variants.list").read_text() == "default\n"


def test_documented_config_matches_the_schema(tmp_path):
    conf = tmp_path / "snf-image.conf"
    conf.write_text(
        uncomment_documented(
            (REPO / "os-definitions" / "snf-image-config" / "snf-image.conf").read_text()
        )
    )  # all of it must load
    loaded = settings.load(conf)
    assert loaded == settings.SnfImageConfig()
