import json
import uuid

import kombu
from consumer_helpers import op, routing_key_of

from ganeti_ext.consumer import cli, topology


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
