"""snf-ganeti-eventd's main loop: watch, diff, spool (main thread); publish (drainer thread).

Roles: on the master, job changes become messages in the outbox; on any other node they
are only recorded (quietly), so a failover can re-send the recent ones. Every node
drains its outbox and its hand-over spool (hooks and the progress monitor run on
non-master nodes too), whatever its role.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ganeti_ext import paths, sdnotify
from ganeti_ext.amqp.backoff import Backoff
from ganeti_ext.amqp.publisher import Publisher, Returned
from ganeti_ext.eventd import catchup
from ganeti_ext.eventd.config import SPOOL_SUBDIR, EventdConfig
from ganeti_ext.eventd.drain import Drainer, PublisherLike
from ganeti_ext.eventd.master import MasterCheck
from ganeti_ext.eventd.outbox import Outbox
from ganeti_ext.eventd.processor import Processor
from ganeti_ext.eventd.state import StateDB
from ganeti_ext.eventd.watcher import Watcher
from ganeti_ext.events.instances import ConfigReader
from ganeti_ext.events.jobfile import JobFileError, read_job_file
from ganeti_ext.events.messages import Context
from ganeti_ext.logsetup import redact_url
from ganeti_ext.network import settings as network_settings
from ganeti_ext.spool import Spool

log = logging.getLogger(__name__)

POLL_MS = 500
HOUSEKEEPING_INTERVAL = 5.0  # seconds between master/queue-directory re-checks
BURST_BATCH = 200  # job changes spooled with one flush while a burst is read
BURST_DELAY = 0.005  # seconds: ... or fewer, once the oldest waited this long


@dataclass(frozen=True)
class Layout:
    """Where this eventd reads and writes (from the config, overridable on the command line)."""

    queue_dir: Path
    state_dir: Path
    ganeti_data_dir: Path
    # FIREWALL_TAG_PREFIX comes from snf-network's settings (one resolver, one prefix).
    snf_network_defaults: Path = Path(paths.SNF_NETWORK_DEFAULTS)

    @property
    def outbox_dir(self) -> Path:
        return self.state_dir / "outbox"

    @property
    def spool_dir(self) -> Path:
        return self.state_dir / SPOOL_SUBDIR

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.sqlite"

    @property
    def master_file(self) -> Path:
        return self.ganeti_data_dir / "ssconf_master_node"

    @property
    def cluster_name_file(self) -> Path:
        return self.ganeti_data_dir / "ssconf_cluster_name"

    @property
    def config_data(self) -> Path:
        return self.ganeti_data_dir / "config.data"


class Eventd:
    """One running daemon (or one catch-up run)."""

    def __init__(
        self,
        config: EventdConfig,
        layout: Layout,
        *,
        assume_master: bool | None = None,
        publisher: PublisherLike | None = None,
    ) -> None:
        self.config = config
        self.layout = layout
        self.stop_requested = threading.Event()
        self.watching = threading.Event()  # set once the job queue is watched (readiness)
        fsync = config.eventd.fsync
        self._unroutable_keys: set[str] = set()
        self.outbox = Outbox(layout.outbox_dir, fsync=fsync)
        self.spool = Spool(layout.spool_dir, fsync=fsync)
        self.state = StateDB(layout.state_db)
        # NICs are reported with the firewall profile the NIC script applies.
        self.ganeti_config = ConfigReader(
            layout.config_data,
            network_settings.load(layout.snf_network_defaults).firewall_tag_prefix,
        )
        self.cluster = self._cluster_name()
        self.master = MasterCheck(layout.master_file, forced=assume_master)
        self.processor = Processor(self.state, self.outbox, self._context)
        amqp = config.amqp
        self.drainer = Drainer(
            [self.outbox, self.spool],
            publisher
            or Publisher(
                amqp.urls,
                amqp.exchange,
                connect_timeout=amqp.connect_timeout,
                confirm_timeout=amqp.confirm_timeout,
                heartbeat=amqp.heartbeat,
                mandatory=True,
                on_unroutable=self._unroutable,
            ),
            Backoff(amqp.retry_interval, max(amqp.retry_interval, amqp.retry_max_interval)),
        )
        self.processor.on_spooled = self.drainer.wake.set

    # --- set-up -------------------------------------------------------------------------

    def _unroutable(self, what: Returned) -> None:
        # The broker dropped it: no queue is bound to its routing key. Retrying would not
        # change that, so it is not retried, but never dropped silently either.
        if what.routing_key not in self._unroutable_keys:
            self._unroutable_keys.add(what.routing_key)
            log.warning(
                "the broker dropped %s: no queue is bound to its routing key (bind one as"
                " docs/amqp-contract.md says; later drops on this key are logged at debug)",
                what,
            )
        else:
            log.debug("the broker dropped %s: no queue is bound", what)

    def _cluster_name(self) -> str:
        try:
            name = self.layout.cluster_name_file.read_text().strip()
        except OSError:
            name = ""
        return name or self.ganeti_config.cluster().get("name") or socket.getfqdn()

    def _context(self) -> Context:
        return Context(
            cluster=self.cluster,
            heartbeat_prefix=self.config.eventd.heartbeat_tag_prefix,
            instance_details=self.ganeti_config.instance,
        )

    def _check_cluster_identity(self) -> None:
        """Forget the state of a previous cluster (a re-created cluster reuses job ids)."""
        uuid = self.ganeti_config.cluster().get("uuid")
        if not uuid:
            return
        known = self.state.get_meta("cluster_uuid")
        if known is not None and known != uuid:
            log.warning(
                "cluster uuid changed (%s -> %s): the cluster was re-created; "
                "forgetting the old job state",
                known,
                uuid,
            )
            self.state.reset()
        self.state.set_meta("cluster_uuid", uuid)
        self.state.commit()

    def describe(self) -> str:
        role = "master" if self.master.is_master else f"not master (master: {self.master.master})"
        urls = ", ".join(redact_url(url) for url in self.config.amqp.urls)
        return (
            f"node {self.master.own_name}, {role}, cluster {self.cluster}, "
            f"queue {self.layout.queue_dir}, state {self.layout.state_dir}, brokers {urls}"
        )

    # --- running ------------------------------------------------------------------------

    def catch_up_only(self) -> int:
        """Catch up, publish what can be published now, and return how many still wait."""
        log.info("catch-up run: %s", self.describe())
        self._check_cluster_identity()
        catchup.catch_up(
            self.layout.queue_dir, self.state, self.processor, publish=self.master.is_master
        )
        self.drainer.drain_once()
        self.drainer.publisher.close()
        waiting = len(self.drainer.pending())
        log.info(
            "catch-up run done: %d message(s) published, %d still queued",
            self.drainer.published,
            waiting,
        )
        return waiting

    def run(self) -> None:
        """Run until SIGTERM/SIGINT."""
        log.info("starting: %s", self.describe())
        self._check_cluster_identity()
        watcher = Watcher(self.layout.queue_dir, self.layout.master_file, [self.layout.spool_dir])
        drain_thread = threading.Thread(target=self.drainer.run, name="drainer", daemon=True)
        drain_thread.start()
        try:
            self._watch(watcher)
        finally:
            watcher.close()
            self.processor.flush()
            self.drainer.stop()
            drain_thread.join(timeout=self.config.amqp.confirm_timeout + 5)
            self.state.close()
            log.info("stopped (%d message(s) published this run)", self.drainer.published)

    def request_stop(self, *_args: object) -> None:
        self.stop_requested.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)

    def _watch(self, watcher: Watcher) -> None:
        waiting_for_queue = True
        next_housekeeping = 0.0
        while not self.stop_requested.is_set():
            if waiting_for_queue:
                if watcher.setup():
                    waiting_for_queue = False
                    self._full_scan()
                    log.info("watching %s", self.layout.queue_dir)
                    self.watching.set()
                    sdnotify.ready(f"watching {self.layout.queue_dir}")
                else:
                    log.warning("job queue %s not there (yet); retrying", self.layout.queue_dir)
                    # Running as designed (it waits for Ganeti): not a failed start.
                    sdnotify.ready(f"waiting for the job queue {self.layout.queue_dir}")
                    if self.stop_requested.wait(HOUSEKEEPING_INTERVAL):
                        break
                    continue
            watcher.poll(POLL_MS)
            changes = watcher.changes
            now = time.monotonic()
            if now >= next_housekeeping:
                next_housekeeping = now + HOUSEKEEPING_INTERVAL
                changes.master_changed = True
                if watcher.queue_replaced():
                    log.warning("job queue %s was replaced; watching it anew", watcher.queue_dir)
                    changes.rescan = True
            if changes.master_changed and self.master.refresh():
                self._role_changed()
            if changes.rescan:
                changes.clear()
                waiting_for_queue = True
                continue
            if changes.jobs:
                self._handle_jobs(dict(changes.jobs))
            if changes.spool:
                self.drainer.wake.set()
            changes.clear()

    def _full_scan(self) -> None:
        catchup.catch_up(
            self.layout.queue_dir, self.state, self.processor, publish=self.master.is_master
        )
        self.drainer.wake.set()

    def _role_changed(self) -> None:
        if self.master.is_master:
            log.warning("this node (%s) is now the master: taking over", self.master.own_name)
            catchup.replay_after_failover(
                self.layout.queue_dir,
                self.state,
                self.processor,
                window=self.config.eventd.failover_replay,
            )
            self._full_scan()
        else:
            log.warning(
                "this node is no longer the master (master: %s): watching quietly",
                self.master.master,
            )

    def _handle_jobs(self, jobs: dict[int, Path]) -> None:
        publish = self.master.is_master
        self.processor.batch_size = BURST_BATCH
        self.processor.max_delay = BURST_DELAY
        try:
            for job_id in sorted(jobs):
                path = jobs[job_id]
                if path.parent != self.layout.queue_dir:
                    # Archived: finished, and almost always handled already.
                    record = self.state.get(job_id)
                    if record is not None and record.finished:
                        continue
                try:
                    job = read_job_file(str(path), expected_id=job_id)
                except JobFileError as err:
                    # Archived or replaced meanwhile: its next event (or the archive
                    # event) brings it back. Otherwise it is a bad file: skip it.
                    if path.exists():
                        log.warning("skipping %s", err)
                    continue
                self.processor.handle(job, publish=publish, history=True)
            self.processor.flush()
        finally:
            self.processor.batch_size = 1
            self.processor.max_delay = None
        self.drainer.wake.set()
