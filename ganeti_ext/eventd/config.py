"""snf-ganeti-eventd's configuration file (/etc/ganeti-ext/eventd.conf), declared and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext import config as configfile
from ganeti_ext import paths
from ganeti_ext.amqp.routing import EXCHANGE
from ganeti_ext.config import spec
from ganeti_ext.events.messages import DEFAULT_HEARTBEAT_PREFIX


@dataclass(frozen=True, kw_only=True)
class Amqp:
    urls: tuple[str, ...] = field(
        default=("amqp://guest:guest@localhost:5672//",),
        metadata=spec("url-list", help="brokers, tried in turn"),
    )
    exchange: str = field(default=EXCHANGE, metadata=spec("str", help="topic exchange"))
    connect_timeout: float = field(
        default=5.0, metadata=spec("float", minimum=0.1, maximum=300, help="seconds per broker")
    )
    confirm_timeout: float = field(
        default=10.0,
        metadata=spec("float", minimum=0.1, maximum=600, help="seconds to wait for a confirm"),
    )
    heartbeat: float = field(
        default=0, metadata=spec("float", minimum=0, maximum=3600, help="AMQP heartbeat")
    )
    retry_interval: float = field(
        default=0.5, metadata=spec("float", minimum=0.01, maximum=600, help="first backoff")
    )
    retry_max_interval: float = field(
        default=10.0, metadata=spec("float", minimum=0.01, maximum=3600, help="backoff cap")
    )


@dataclass(frozen=True, kw_only=True)
class Eventd:
    queue_dir: Path = field(default=Path(paths.GANETI_QUEUE_DIR), metadata=spec("path"))
    state_dir: Path = field(default=Path(paths.EVENTD_STATE_DIR), metadata=spec("path"))
    ganeti_data_dir: Path = field(default=Path(paths.GANETI_DATA_DIR), metadata=spec("path"))
    heartbeat_tag_prefix: str = field(default=DEFAULT_HEARTBEAT_PREFIX, metadata=spec("str"))
    log: str = field(
        default=paths.EVENTD_LOG_FILE,
        metadata=spec("str", help="a log file path, 'syslog' or 'stderr'"),
    )
    debug: bool = field(default=False, metadata=spec("bool"))
    failover_replay: float = field(
        default=300.0,
        metadata=spec(
            "float",
            minimum=0,
            maximum=86400,
            help="on becoming master, re-send changes of the last this many seconds",
        ),
    )
    fsync: bool = field(default=True, metadata=spec("bool"))


@dataclass(frozen=True, kw_only=True)
class EventdConfig:
    amqp: Amqp = field(default_factory=Amqp)
    eventd: Eventd = field(default_factory=Eventd)


SPOOL_SUBDIR = "spool"  # under [eventd] state_dir: what others hand over to eventd


def spool_dir(where: paths.Paths = paths.DEFAULT) -> Path:
    """eventd's hand-over spool as eventd's own configuration places it, for the hook and
    snf-progress-monitor: they must write where eventd reads, whatever `state_dir` says.

    Without a configuration file, the default (`where` re-roots it in tests). Raises
    ConfigError for a configuration eventd itself would refuse.
    """
    if not where.eventd_conf.exists():
        return where.eventd_spool_dir
    return configfile.load(EventdConfig, where.eventd_conf).eventd.state_dir / SPOOL_SUBDIR
