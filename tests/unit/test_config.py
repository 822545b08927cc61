from dataclasses import FrozenInstanceError, dataclass, field
from pathlib import Path

import pytest

from ganeti_ext import config
from ganeti_ext.config import spec
from ganeti_ext.errors import ConfigError


@dataclass(frozen=True, kw_only=True)
class General:
    name: str = field(default="eventd", metadata=spec("str"))
    workers: int = field(default=2, metadata=spec("int", minimum=1, maximum=16))
    ratio: float = field(default=0.5, metadata=spec("float"))
    enabled: bool = field(default=True, metadata=spec("bool"))
    spool: Path = field(default=Path("/var/lib/x"), metadata=spec("path"))
    mode: str = field(default="auto", metadata=spec("choice", choices=("auto", "slaac")))
    names: tuple[str, ...] = field(default=("a",), metadata=spec("list"))
    max_size: int = field(default=1024, metadata=spec("size"))


@dataclass(frozen=True, kw_only=True)
class Broker:
    urls: tuple[str, ...] = field(metadata=spec("url-list"))
    password: str = field(default="", metadata=spec("str"))


@dataclass(frozen=True, kw_only=True)
class Sample:
    general: General = field(default_factory=General)
    broker: Broker = field(default_factory=Broker)


GOOD = """
[general]
name = test
workers = 4
ratio = 1.5
enabled = no
spool = /tmp/spool
mode = slaac
names = one, two three
max_size = 4M

[broker]
urls = amqp://u:p@h1:5672//, amqp://h2//
"""


def test_typed_values():
    conf = config.loads(Sample, GOOD)
    assert conf.general.name == "test"
    assert conf.general.workers == 4
    assert conf.general.ratio == 1.5
    assert conf.general.enabled is False
    assert conf.general.spool == Path("/tmp/spool")
    assert conf.general.mode == "slaac"
    assert conf.general.names == ("one", "two", "three")
    assert conf.general.max_size == 4 * 1024 * 1024
    assert conf.broker.urls == ("amqp://u:p@h1:5672//", "amqp://h2//")


def test_result_is_frozen():
    conf = config.loads(Sample, GOOD)
    with pytest.raises(FrozenInstanceError):
        conf.general.workers = 1


def test_defaults_apply_to_keys_not_given():
    conf = config.loads(Sample, "[broker]\nurls = amqp://h//\n")
    assert conf.general.workers == 2
    assert conf.general.spool == Path("/var/lib/x")
    assert conf.general.names == ("a",)


def test_missing_file_gives_defaults(tmp_path):
    @dataclass(frozen=True, kw_only=True)
    class Optional:
        general: General = field(default_factory=General)

    assert config.load(Optional, tmp_path / "absent.conf").general.workers == 2
    with pytest.raises(ConfigError, match=r"absent.conf: file does not exist"):
        config.load(Optional, tmp_path / "absent.conf", must_exist=True)


def test_missing_file_with_required_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as failure:
        config.load(Sample, tmp_path / "absent.conf")
    assert str(failure.value) == f"{tmp_path}/absent.conf: [broker] urls: required key is missing"


def test_load_reads_the_file(tmp_path):
    path = tmp_path / "x.conf"
    path.write_text(GOOD)
    assert config.load(Sample, path).general.workers == 4


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "[general]\nworkers = many\n",
            "[general] workers: must be an integer, got 'many'",
            id="int",
        ),
        pytest.param("[general]\nworkers = 0\n", "[general] workers: must be at least 1", id="min"),
        pytest.param(
            "[general]\nworkers = 17\n", "[general] workers: must be at most 16", id="max"
        ),
        pytest.param("[general]\nratio = x\n", "[general] ratio: must be a number", id="float"),
        pytest.param(
            "[general]\nenabled = maybe\n", "[general] enabled: must be yes/no", id="bool"
        ),
        pytest.param(
            "[general]\nspool = rel/path\n", "[general] spool: must be an absolute path", id="path"
        ),
        pytest.param(
            "[general]\nmode = dhcp\n", "[general] mode: must be one of auto, slaac", id="choice"
        ),
        pytest.param("[general]\nmax_size = 4Q\n", "[general] max_size: must be a size", id="size"),
        pytest.param(
            "[general]\nwrokers = 1\n", "[general] wrokers: unknown key (known: ", id="unknown-key"
        ),
        pytest.param(
            "[genral]\n", "[genral]: unknown section (known: broker, general)", id="unknown-section"
        ),
        pytest.param("[DEFAULT]\nx = 1\n", "[DEFAULT]: unknown section", id="default-section"),
        pytest.param(
            "[broker]\nurls =\n", "[broker] urls: needs at least one URL", id="url-list-empty"
        ),
        pytest.param(
            "[broker]\nurls = not-a-url\n",
            "[broker] urls: URL 1 is not scheme://",
            id="url-list-bad",
        ),
        pytest.param(
            "workers = 1\n", "line 1: a [section] header must come first", id="no-section"
        ),
        pytest.param(
            "[general]\nworkers = 1\nworkers = 2\n",
            "line 3: [general] workers: key given twice",
            id="duplicate-key",
        ),
        pytest.param(
            "[general]\n[general]\n",
            "line 2: section [general] given twice",
            id="duplicate-section",
        ),
        pytest.param("[general]\njust words\n", "cannot parse line(s) 2", id="garbage"),
    ],
)
def test_errors_name_file_section_and_key(text, expected):
    if "[broker]" not in text and "broker" not in expected and "header" not in expected:
        text += "\n[broker]\nurls = amqp://h//\n"
    with pytest.raises(ConfigError) as failure:
        config.loads(Sample, text, source="/etc/sample.conf")
    assert str(failure.value).startswith("/etc/sample.conf: ")
    assert expected in str(failure.value)


def test_url_errors_do_not_show_passwords():
    with pytest.raises(ConfigError) as failure:
        config.loads(Sample, "[broker]\nurls = amqp://h//, u:hunter2@\n")
    assert "hunter2" not in str(failure.value)


def test_secret_values_are_not_echoed():
    @dataclass(frozen=True, kw_only=True)
    class Secrets:
        password_rounds: int = field(default=1, metadata=spec("int"))

    @dataclass(frozen=True, kw_only=True)
    class WithSecret:
        auth: Secrets = field(default_factory=Secrets)

    with pytest.raises(ConfigError) as failure:
        config.loads(WithSecret, "[auth]\npassword_rounds = hunter2\n")
    assert "hunter2" not in str(failure.value)


def test_percent_signs_are_literal():
    conf = config.loads(Sample, "[broker]\nurls = amqp://h//\npassword = a%b%%c\n")
    assert conf.broker.password == "a%b%%c"


def test_unreadable_file(tmp_path):
    path = tmp_path / "x.conf"
    path.write_bytes(b"[general]\nname = \xff\n")
    with pytest.raises(ConfigError, match=r"not valid UTF-8"):
        config.load(Sample, path)
    with pytest.raises(ConfigError, match=r"cannot read"):
        config.load(Sample, tmp_path)  # a directory
