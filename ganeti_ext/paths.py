"""Every filesystem path the suite uses, in one place.

The module constants are the installed locations. Code that touches the filesystem takes
a `Paths` object (default `DEFAULT`) so that tests can run against a temporary root with
`Paths.under(tmp_path)` instead of patching constants one by one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

# --- Ganeti's own locations (Ganeti 3.0, Debian layout) ---
GANETI_DATA_DIR = "/var/lib/ganeti"
GANETI_QUEUE_DIR = "/var/lib/ganeti/queue"
GANETI_EXTSTORAGE_LOG_DIR = "/var/log/ganeti/extstorage"
# Points at the Ganeti version this node runs (/usr/share/ganeti/<major.minor>); Debian's
# ganeti package sets it, and `gnt-cluster upgrade` switches it.
GANETI_SHARE_LINK = "/etc/ganeti/share"

# --- ganeti-ext configuration files ---
EVENTD_CONF = "/etc/ganeti-ext/eventd.conf"
ARCHIPELAGO_CONF = "/etc/archipelago/archipelago.conf"
SNF_IMAGE_CONF = "/etc/snf-image/snf-image.conf"
NFDHCPD_CONF = "/etc/nfdhcpd/nfdhcpd.conf"
SNF_NETWORK_DEFAULTS = "/etc/default/snf-network"

# --- ganeti-ext state and logs ---
SNF_IMAGE_DIR = "/var/lib/snf-image"  # local images; [images] dir in snf-image.conf
SNF_IMAGE_SCRATCH_DIR = "/var/lib/snf-image/tmp"
SNF_IMAGE_HELPER_DIR = "/var/lib/snf-image/helper"  # vmlinuz, initrd.img, manifest.json
NFDHCPD_STATE_DIR = "/var/lib/nfdhcpd"
NFDHCPD_LOG_DIR = "/var/log/nfdhcpd"
NFDHCPD_PID_FILE = "/run/nfdhcpd/nfdhcpd.pid"
SNF_NETWORK_STATE_DIR = "/var/lib/snf-network"
EVENTD_STATE_DIR = "/var/lib/snf-ganeti-eventd"
# Hand-over spool: hooks and the progress monitor drop messages here (on any node) and
# that node's eventd publishes them, so neither ever waits for the broker. This is the
# default: they follow eventd's [eventd] state_dir (ganeti_ext/eventd/config.spool_dir).
EVENTD_SPOOL_DIR = "/var/lib/snf-ganeti-eventd/spool"
EVENTD_LOG_FILE = "/var/log/ganeti-ext/eventd.log"
GANETI_EXT_LOG_DIR = "/var/log/ganeti-ext"
ARCHIPELAGO_LOG_FILE = "/var/log/ganeti/extstorage/archipelago.log"
ARCHIPELAGO_STORE_DIR = "/srv/archipelago"  # default; [store] path in archipelago.conf


@dataclasses.dataclass(frozen=True)
class Paths:
    """The suite's paths, optionally re-rooted (for tests and for building images)."""

    ganeti_data_dir: Path = Path(GANETI_DATA_DIR)
    ganeti_queue_dir: Path = Path(GANETI_QUEUE_DIR)
    ganeti_extstorage_log_dir: Path = Path(GANETI_EXTSTORAGE_LOG_DIR)
    ganeti_share_link: Path = Path(GANETI_SHARE_LINK)
    eventd_conf: Path = Path(EVENTD_CONF)
    archipelago_conf: Path = Path(ARCHIPELAGO_CONF)
    snf_image_conf: Path = Path(SNF_IMAGE_CONF)
    nfdhcpd_conf: Path = Path(NFDHCPD_CONF)
    snf_network_defaults: Path = Path(SNF_NETWORK_DEFAULTS)
    nfdhcpd_state_dir: Path = Path(NFDHCPD_STATE_DIR)
    snf_network_state_dir: Path = Path(SNF_NETWORK_STATE_DIR)
    eventd_state_dir: Path = Path(EVENTD_STATE_DIR)
    eventd_spool_dir: Path = Path(EVENTD_SPOOL_DIR)
    eventd_log_file: Path = Path(EVENTD_LOG_FILE)
    ganeti_ext_log_dir: Path = Path(GANETI_EXT_LOG_DIR)
    archipelago_log_file: Path = Path(ARCHIPELAGO_LOG_FILE)
    archipelago_store_dir: Path = Path(ARCHIPELAGO_STORE_DIR)

    def under(self, root: str | Path) -> Paths:
        """The same layout below `root` (e.g. tmp_path/etc/archipelago/archipelago.conf)."""
        root = Path(root)
        return Paths(
            **{
                field.name: root / getattr(self, field.name).relative_to("/")
                for field in dataclasses.fields(self)
            }
        )


DEFAULT = Paths()
