"""The ExtStorage scripts end to end: environment in, stdout/stderr/exit code out."""

import os
import subprocess
import sys

import pytest
from unit_helpers import REPO, env_fixture, uncomment_documented

from ganeti_ext.environ.extstorage import VERBS
from ganeti_ext.errors import ConfigError
from ganeti_ext.extstorage import settings
from ganeti_ext.extstorage.provider import KNOWN_PARAMS
from ganeti_ext.paths import DEFAULT

PROVIDER_DIR = REPO / "extstorage" / "archipelago"
VOL = "3f1c2b7e-9d4a-4b8e-a1f0-6c2d9e8b7a51.ext.disk0"


@pytest.fixture
def root(tmp_path):
    """A node root with a store configured and the log directory Ganeti requires."""
    paths = DEFAULT.under(tmp_path)
    paths.archipelago_conf.parent.mkdir(parents=True)
    paths.archipelago_conf.write_text(f"[store]\npath = {tmp_path}/store\n")
    paths.archipelago_log_file.parent.mkdir(parents=True)
    return paths


def _script(verb, env, root):
    code = (
        "import sys\n"
        "from ganeti_ext.extstorage.cli import main\n"
        "from ganeti_ext.paths import DEFAULT\n"
        "main(sys.argv[1], paths=DEFAULT.under(sys.argv[2]))\n"
    )
    root_dir = str(root.archipelago_conf).removesuffix("/etc/archipelago/archipelago.conf")
    return subprocess.run(
        [sys.executable, "-c", code, verb, root_dir],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_expected_failure_is_one_line_on_stderr_and_exit_1(root):
    proc = _script("verify", {"EXTP_COLOUR": "blue"}, root)
    assert proc.returncode == 1
    assert proc.stderr == (
        "archipelago-verify: error: EXTP_COLOUR: unknown parameter 'colour' "
        "(known: origin, origin_size)\n"
    )
    assert "EXTP_COLOUR" in root.archipelago_log_file.read_text()


def test_missing_variable_is_named(root):
    proc = _script("create", {"VOL_NAME": VOL}, root)
    assert proc.returncode == 1
    assert proc.stderr == "archipelago-create: error: VOL_SIZE: is missing or empty\n"


def test_bad_config_names_file_and_key(root):
    root.archipelago_conf.write_text("[store]\npath = relative\n")
    proc = _script("attach", env_fixture("es-attach"), root)
    assert proc.returncode == 1
    assert f"{root.archipelago_conf}: [store] path: must be an absolute path" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_block_size_must_be_a_power_of_two(tmp_path):
    conf = tmp_path / "archipelago.conf"
    conf.write_text("[store]\nblock_size = 3M\n")
    with pytest.raises(ConfigError, match=r"\[store\] block_size: must be a power of two"):
        settings.load(conf)
    conf.write_text("[store]\nblock_size = 1M\nlock_timeout = 5\n")
    assert settings.load(conf).store.block_size == 1024 * 1024


def test_documented_config_matches_the_schema(tmp_path):
    conf = tmp_path / "archipelago.conf"
    conf.write_text(
        uncomment_documented((REPO / "extstorage" / "archipelago.conf").read_text())
    )  # all of it must load
    loaded = settings.load(conf)
    assert loaded == settings.load(tmp_path / "absent.conf")  # documented = defaults


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_an_executable_shim(verb):
    shim = PROVIDER_DIR / verb
    assert os.access(shim, os.X_OK)
    text = shim.read_text()
    assert text.startswith("#!/usr/bin/python3\n")
    assert f'main("{verb}")' in text
    assert len(text.splitlines()) <= 6
    compile(text, str(shim), "exec")


def test_every_executable_in_the_provider_is_a_verb_ganeti_calls():
    executables = {p.name for p in PROVIDER_DIR.iterdir() if os.access(p, os.X_OK)}
    assert executables == set(VERBS)


def test_parameters_list_matches_known_params():
    lines = (PROVIDER_DIR / "parameters.list").read_text().splitlines()
    assert {line.split(None, 1)[0]: line.split(None, 1)[1] for line in lines} == dict(KNOWN_PARAMS)
