"""/etc/archipelago/archipelago.conf: where the store is, lock patience, import limits.

The documented file is extstorage/archipelago.conf; the keys here must match it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext import config, paths
from ganeti_ext.config import spec
from ganeti_ext.errors import ConfigError
from ganeti_ext.extstorage.filestore.layout import (
    DEFAULT_BLOCK_SIZE,
    MAX_BLOCK_SIZE,
    MIN_BLOCK_SIZE,
)


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
    backend: str = field(
        default="file",
        metadata=spec("choice", choices=("file",), help="Storage backend (file: XFS/btrfs)."),
    )
    block_size: int = field(
        default=DEFAULT_BLOCK_SIZE,
        metadata=spec(
            "size",
            minimum=MIN_BLOCK_SIZE,
            maximum=MAX_BLOCK_SIZE,
            help="Block size for `archipelago store init` (a power of two); a store keeps "
            "the one it was created with.",
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
class ImagesSection:
    max_size: int = field(
        default=1024**4,
        metadata=spec(
            "size",
            minimum=1024**2,
            help="Largest image (decoded size) `archipelago image import` accepts.",
        ),
    )
    download_timeout: float = field(
        default=60.0,
        metadata=spec(
            "float",
            minimum=1,
            maximum=3600,
            help="Seconds without progress after which a download is given up.",
        ),
    )


@dataclass(frozen=True, kw_only=True)
class ArchipelagoConfig:
    store: StoreSection = field(default_factory=StoreSection)
    images: ImagesSection = field(default_factory=ImagesSection)


def load(
    path: str | Path = paths.ARCHIPELAGO_CONF, *, must_exist: bool = False
) -> ArchipelagoConfig:
    """Read the provider's configuration (defaults when the file does not exist, unless
    `must_exist`: a file the admin named)."""
    conf = config.load(ArchipelagoConfig, path, must_exist=must_exist)
    block_size = conf.store.block_size
    if block_size & (block_size - 1):
        raise ConfigError(path, f"must be a power of two, got {block_size}", "store", "block_size")
    return conf
