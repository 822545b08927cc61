import json
import shlex
import uuid
from pathlib import Path

import kombu
import pytest
from consumer_helpers import op, routing_key_of

from ganeti_ext.consumer import cli, topology
from ganeti_ext.errors import GanetiExtError


def test_consume_once_over_the_memory_transport(tmp_path, capsys, clean_logging):
    prefix = f"cli{uuid.uuid4().hex[:6]}"
    connection = kombu.Connection("memory://")
    topology.declare(connection.channel(), prefix)
    producer = kombu.Producer(connection.channel(), exchange=topology.exchange())
    for body in (op(t=1), op(operation="OP_INSTANCE_SHUTDOWN", t=2)):
        producer.publish(json.dumps(body), routing_key=routing_key_of(body), message_id=str(body))
    db = tmp_path / "state.db"
    argv = ["consume", "--db", f"sqlite:///{db}", "--url", "memory://", "--once"]
    assert cli.execute([*argv, "--queue-prefix", prefix]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["handled"] == 2 and summary["db"]["applied"] == 2
    connection.release()


def test_url_file_skips_comments_and_keeps_order(tmp_path):
    path = tmp_path / "broker-urls"
    path.write_text("# primary, then fail-over\namqp://a:s3cret@one//\n\namqps://a:s3cret@two//\n")
    assert cli.read_url_file(path) == ["amqp://a:s3cret@one//", "amqps://a:s3cret@two//"]


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("", "no broker URL", id="empty"),
        pytest.param("# only a comment\n", "no broker URL", id="comments"),
        pytest.param("http://a:s3cret@one/\n", "line 1 is not an amqp:// URL", id="scheme"),
        pytest.param("amqp://a:s3cret@one// extra\n", "line 1 is not", id="two-words"),
    ],
)
def test_bad_url_file_names_the_file_and_line_but_not_the_password(tmp_path, text, expected):
    path = tmp_path / "broker-urls"
    path.write_text(text)
    with pytest.raises(GanetiExtError) as err:
        cli.read_url_file(path)
    assert expected in str(err.value) and str(path) in str(err.value)
    assert "s3cret" not in str(err.value)


def test_missing_url_file_is_a_clear_error(tmp_path, capsys, clean_logging):
    argv = ["consume", "--db", f"sqlite:///{tmp_path}/s.db", "--url-file", f"{tmp_path}/none"]
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code != 0
    err = capsys.readouterr().err
    assert "--url-file" in err and "No such file" in err and "Traceback" not in err


def test_the_packaged_unit_runs_a_command_line_snf_events_accepts(tmp_path):
    """debian/snf-events.service with the shipped defaults expands to valid arguments."""
    defaults = dict(
        shlex.split(line)[0].split("=", 1)
        for line in Path("debian/snf-events.default").read_text().splitlines()
        if line and not line.startswith("#")
    )
    unit = Path("debian/snf-events.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    command = exec_start.removeprefix("ExecStart=")
    command = command.replace("${CREDENTIALS_DIRECTORY}", str(tmp_path))
    for key, value in defaults.items():
        command = command.replace(f"${{{key}}}", value).replace(f"${key}", value)
    argv = shlex.split(command)
    assert argv[0] == "/usr/bin/snf-events"
    args = cli._parser().parse_args(argv[1:])
    assert args.command == "consume" and args.url_file == tmp_path / "broker-urls"
    assert args.db == "sqlite:////var/lib/snf-events/state.db"
    assert "LoadCredential=broker-urls:/etc/snf-events/broker-urls" in unit
