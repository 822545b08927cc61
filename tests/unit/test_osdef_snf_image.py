"""The snf-image OS scripts: null images succeed, everything else fails clearly."""

import io
import logging
import os
import subprocess
import sys

import pytest
from unit_helpers import REPO, env_fixture

from ganeti_ext.environ import osapi
from ganeti_ext.errors import EnvError, ValidationError
from ganeti_ext.osdef import cli, transfer

OS_DIR = REPO / "os-definitions" / "snf-image"


def test_create_with_null_image_succeeds_without_touching_the_disk(caplog):
    with caplog.at_level(logging.INFO):
        cli.execute("create", env_fixture("os-create-ext"))
    assert "already holds the image" in caplog.text
    assert "s3cr3t" not in caplog.text


def test_reinstall_with_null_image_succeeds():
    cli.execute("create", env_fixture("os-create-file"))


def test_create_from_an_image_store_is_not_supported_yet():
    env = env_fixture("os-create-ext") | {"OSP_IMG_ID": "debian-12"}
    with pytest.raises(ValidationError, match=r"image stores are not supported yet"):
        cli.execute("create", env)


def test_create_needs_img_id_and_a_disk():
    env = env_fixture("os-create-ext")
    del env["OSP_IMG_ID"]
    with pytest.raises(ValidationError, match=r"img_id: required"):
        cli.execute("create", env)
    env = env_fixture("os-create-ext") | {"DISK_COUNT": "0"}
    with pytest.raises(ValidationError, match=r"has no disks"):
        cli.execute("create", env)


def test_create_with_config_url_is_not_supported_yet():
    env = env_fixture("os-create-ext") | {"OSP_CONFIG_URL": "https://cloud.example/c"}
    with pytest.raises(ValidationError, match=r"config_url: .*not supported yet"):
        cli.execute("create", env)


def test_verify_checks_parameters():
    cli.execute("verify", env_fixture("os-verify"), ["parameters"])
    cli.execute("verify", env_fixture("os-verify"))
    bad = env_fixture("os-verify") | {"OSP_IMG_PASSWD": "x"}
    with pytest.raises(ValidationError, match=r"img_passwd and img_passwd_hash"):
        cli.execute("verify", bad, ["parameters"])
    with pytest.raises(ValidationError, match=r"unknown check 'disks'"):
        cli.execute("verify", env_fixture("os-verify"), ["disks"])


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


def test_bad_environment_names_the_variable():
    with pytest.raises(EnvError, match=r"^NIC_0_MAC: "):
        cli.execute("create", env_fixture("os-create-ext") | {"NIC_0_MAC": "x"})


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
    env = env_fixture("os-create-ext") | {"OSP_IMG_ID": "debian-12"}
    proc = _run_shim("create", env)
    assert proc.returncode == 1
    assert proc.stdout == ""
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("snf-image-create: error: OS parameter img_id: image stores")
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
