"""/etc/archipelago/archipelago.conf: where the store is, its block size, lock patience.

The documented file is extstorage/archipelago.conf; the keys here must match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext import config, paths
from ganeti_ext.config import spec
from ganeti_ext.errors import ConfigError
from ganeti_ext.extstorage.store import MIB


@dataclass(frozen=True, kw_only=True)
class StoreSection:
    path: Path = field(
        default=Path(paths.ARCHIPELAGO_STORE_DIR),
        metadata=spec(
            "path",
            help="Store directory; the same shared file system on every node "
            "(reflink-capable, XFS or btrfs, for snapshots).",
        ),
    )
    block_size: int = field(
        default=4 * MIB,
        metadata=spec(
            "size",
            minimum=4096,
            maximum=1024 * MIB,
            help="Block size of the content-addressed store (a power of two).",
        ),
    )
    lock_timeout: float = field(
        default=60.0,
        metadata=spec(
            "float",
            minimum=1,
            maximum=3600,
            help="Seconds a verb waits for a volume's lock before failing.",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ArchipelagoConfig:
    store: StoreSection = field(default_factory=StoreSection)


def load(path: str | Path = paths.ARCHIPELAGO_CONF) -> ArchipelagoConfig:
    """Read the provider's configuration (defaults when the file does not exist)."""
    conf = config.load(ArchipelagoConfig, path)
    block_size = conf.store.block_size
    if block_size & (block_size - 1):
        raise ConfigError(path, f"must be a power of two, got {block_size}", "store", "block_size")
    return conf
