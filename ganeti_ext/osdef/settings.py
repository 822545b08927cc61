"""/etc/snf-image/snf-image.conf: where images and the helper live, how it runs, which
network tags mean DHCP, where progress goes.

The documented file is os-definitions/snf-image-config/snf-image.conf; a unit test
loads it with every setting uncommented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext import config, paths
from ganeti_ext.config import spec


@dataclass(frozen=True, kw_only=True)
class ImagesSection:
    dir: Path = field(
        default=Path(paths.SNF_IMAGE_DIR),
        metadata=spec("path", help="Directory of local images (img_id=<name> or local://)."),
    )
    scratch_dir: Path = field(
        default=Path(paths.SNF_IMAGE_SCRATCH_DIR),
        metadata=spec("path", help="Where a compressed qcow2 is decompressed first."),
    )
    download_timeout: float = field(
        default=60.0, metadata=spec("float", minimum=1, maximum=3600, help="Stall timeout.")
    )
    max_size: int = field(
        default=1024**4, metadata=spec("size", minimum=1024**2, help="Largest decoded image.")
    )
    config_url_timeout: float = field(
        default=30.0, metadata=spec("float", minimum=1, maximum=600, help="config_url time.")
    )
    config_url_max_size: int = field(
        default=1024**2,
        metadata=spec("size", minimum=1024, maximum=64 * 1024**2, help="config_url size."),
    )


@dataclass(frozen=True, kw_only=True)
class HelperSection:
    dir: Path = field(
        default=Path(paths.SNF_IMAGE_HELPER_DIR),
        metadata=spec("path", help="vmlinuz and initrd.img of the helper VM."),
    )
    user: str = field(
        default="snf-image-helper", metadata=spec("str", help="User the helper VM runs as.")
    )
    accel: str = field(
        default="auto",
        metadata=spec("choice", choices=("auto", "kvm", "tcg"), help="qemu accelerator."),
    )
    memory: int = field(
        default=384, metadata=spec("int", minimum=128, maximum=4096, help="MiB of memory.")
    )
    timeout: float = field(
        default=120.0, metadata=spec("float", minimum=10, maximum=3600, help="Base timeout.")
    )
    timeout_per_gib: float = field(
        default=5.0,
        metadata=spec("float", minimum=0, maximum=600, help="Extra seconds per GiB of disk."),
    )


@dataclass(frozen=True, kw_only=True)
class NetworkSection:
    dhcp_tags: tuple[str, ...] = field(
        default=("auto", "dhcp", "nfdhcpd"),
        metadata=spec("list", help="Network tags that mean: IPv4 by DHCP."),
    )
    stateful_dhcpv6_tags: tuple[str, ...] = field(
        default=("dhcpv6",), metadata=spec("list", help="Tags that mean: IPv6 by DHCPv6.")
    )
    nameservers: tuple[str, ...] = field(
        default=(), metadata=spec("list", help="DNS servers for statically configured NICs.")
    )


@dataclass(frozen=True, kw_only=True)
class ProgressSection:
    monitor: str = field(
        default="/usr/bin/snf-progress-monitor",
        metadata=spec("str", help="Command fed progress events; empty: none."),
    )
    interval: float = field(
        default=3.0, metadata=spec("float", minimum=0.5, maximum=60, help="Copy progress period.")
    )


@dataclass(frozen=True, kw_only=True)
class SnfImageConfig:
    images: ImagesSection = field(default_factory=ImagesSection)
    helper: HelperSection = field(default_factory=HelperSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    progress: ProgressSection = field(default_factory=ProgressSection)


def load(path: str | Path = paths.SNF_IMAGE_CONF, *, must_exist: bool = False) -> SnfImageConfig:
    """Read snf-image's configuration (defaults when it is missing, unless `must_exist`)."""
    return config.load(SnfImageConfig, path, must_exist=must_exist)
