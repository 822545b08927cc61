"""nfdhcpd's configuration file (/etc/nfdhcpd/nfdhcpd.conf), declared and checked at start."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext import config as configfile
from ganeti_ext import paths
from ganeti_ext.config import spec
from ganeti_ext.errors import ConfigError
from ganeti_ext.nfdhcpd import dhcpv4, ndp

_DOMAIN = re.compile(r"^(?=.{1,253}\Z)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+\Z")


@dataclass(frozen=True, kw_only=True)
class General:
    pidfile: Path = field(default=Path(paths.NFDHCPD_PID_FILE), metadata=spec("path"))
    datapath: Path = field(default=Path(paths.NFDHCPD_STATE_DIR), metadata=spec("path"))
    logdir: Path = field(default=Path(paths.NFDHCPD_LOG_DIR), metadata=spec("path"))
    user: str = field(default="nobody", metadata=spec("str", help="empty: stay root"))


@dataclass(frozen=True, kw_only=True)
class Dhcp:
    enable_dhcp: bool = field(default=True, metadata=spec("bool"))
    lease_lifetime: int = field(default=604800, metadata=spec("int", minimum=60))
    lease_renewal: int = field(default=600, metadata=spec("int", minimum=30))
    server_ip: str = field(default="", metadata=spec("str"))
    server_on_link: bool = field(default=False, metadata=spec("bool"))
    dhcp_queue: int = field(default=42, metadata=spec("int", minimum=0, maximum=65535))
    nameservers: tuple[str, ...] = field(default=(), metadata=spec("list"))
    domain: str = field(default="", metadata=spec("str"))


@dataclass(frozen=True, kw_only=True)
class Ipv6:
    enable_ipv6: bool = field(default=True, metadata=spec("bool"))
    mode: str = field(default="auto", metadata=spec("choice", choices=ndp.MODES))
    ra_period: int = field(default=300, metadata=spec("int", minimum=3, maximum=1800))
    rs_queue: int = field(default=43, metadata=spec("int", minimum=0, maximum=65535))
    ns_queue: int = field(default=44, metadata=spec("int", minimum=0, maximum=65535))
    dhcpv6_queue: int = field(default=45, metadata=spec("int", minimum=0, maximum=65535))
    nameservers: tuple[str, ...] = field(default=(), metadata=spec("list"))
    domains: tuple[str, ...] = field(default=(), metadata=spec("list"))


@dataclass(frozen=True, kw_only=True)
class NfdhcpdConfig:
    general: General = field(default_factory=General)
    dhcp: Dhcp = field(default_factory=Dhcp)
    ipv6: Ipv6 = field(default_factory=Ipv6)


@dataclass(frozen=True)
class Loaded:
    """The file's settings plus the protocol settings derived (and checked) from them."""

    raw: NfdhcpdConfig
    dhcp: dhcpv4.Settings | None  # None: DHCPv4 disabled
    ipv6: ndp.Settings | None  # None: IPv6 disabled

    @property
    def queues(self) -> dict[str, int]:
        out = {}
        if self.dhcp is not None:
            out["dhcpv4"] = self.raw.dhcp.dhcp_queue
        if self.ipv6 is not None:
            out["rs"] = self.raw.ipv6.rs_queue
            out["ns"] = self.raw.ipv6.ns_queue
            out["dhcpv6"] = self.raw.ipv6.dhcpv6_queue
        return out


def _addresses(source, section, key, values, kind):
    out = []
    for value in values:
        try:
            out.append(kind(value))
        except ValueError:
            raise ConfigError(source, f"not an {kind.__name__}: {value!r}", section, key) from None
    return tuple(out)


def _domain(source, section, key, value):
    if value and not _DOMAIN.match(value):
        raise ConfigError(source, f"not a DNS domain: {value!r}", section, key)
    return value.rstrip(".")


def derive(raw: NfdhcpdConfig, source: str) -> Loaded:
    d, v6 = raw.dhcp, raw.ipv6
    queues = [d.dhcp_queue, v6.rs_queue, v6.ns_queue, v6.dhcpv6_queue]
    if len(set(queues)) != len(queues):
        raise ConfigError(source, "every queue number must be different", "ipv6", "rs_queue")
    if d.lease_renewal > d.lease_lifetime:
        raise ConfigError(source, "must not exceed lease_lifetime", "dhcp", "lease_renewal")
    server_ip = None
    if d.server_ip:
        (server_ip,) = _addresses(source, "dhcp", "server_ip", [d.server_ip], ipaddress.IPv4Address)
    dhcp = dhcpv4.Settings(
        lease_lifetime=d.lease_lifetime,
        lease_renewal=d.lease_renewal,
        server_ip=server_ip,
        server_on_link=d.server_on_link,
        nameservers=_addresses(source, "dhcp", "nameservers", d.nameservers, ipaddress.IPv4Address),
        domain=_domain(source, "dhcp", "domain", d.domain),
    )
    ipv6 = ndp.Settings(
        mode=v6.mode,
        ra_period=v6.ra_period,
        nameservers=_addresses(
            source, "ipv6", "nameservers", v6.nameservers, ipaddress.IPv6Address
        ),
        domains=tuple(_domain(source, "ipv6", "domains", x) for x in v6.domains),
    )
    return Loaded(raw, dhcp if d.enable_dhcp else None, ipv6 if v6.enable_ipv6 else None)


def load(path: str | Path = paths.NFDHCPD_CONF, *, must_exist: bool = False) -> Loaded:
    """Read and check `path` (all defaults when it is missing, unless `must_exist`)."""
    return derive(configfile.load(NfdhcpdConfig, path, must_exist=must_exist), str(path))


def loads(text: str, source: str = "<string>") -> Loaded:
    return derive(configfile.loads(NfdhcpdConfig, text, source), source)
