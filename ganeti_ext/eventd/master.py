"""Whether this node is the cluster master (only the master publishes job messages),
asked again on every housekeeping round (names and the rule: ganeti_ext/node.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from ganeti_ext.node import canonical_name, master_from, same_node

log = logging.getLogger(__name__)


class MasterCheck:
    """Answers "am I the master?", re-reading ssconf when asked to refresh."""

    def __init__(
        self, ssconf_master: Path, own_name: str | None = None, forced: bool | None = None
    ):
        self.ssconf_master = ssconf_master
        self.own_name = own_name or canonical_name()
        self.forced = forced
        self.master: str | None = None
        self.is_master = False
        self.refresh()

    def refresh(self) -> bool:
        """Re-read the master's name; return True if our role changed."""
        before = self.is_master
        if self.forced is not None:
            self.is_master = self.forced
        else:
            self.master = master_from(self.ssconf_master)
            self.is_master = same_node(self.own_name, self.master)
        return before != self.is_master
