"""nfdhcpd binding files: what the NIC scripts tell nfdhcpd about each tap.

One file per tap in nfdhcpd's state dir (default /var/lib/nfdhcpd), named after the tap,
holding `KEY=value` lines:

    INDEV IP MAC HOSTNAME TAGS GATEWAY SUBNET GATEWAY6 SUBNET6 EUI64 PRIVATE MTU MACSPOOF

MAC and HOSTNAME are required; every other key may be absent or empty. Values may be
wrapped in single or double quotes (shell style, as upstream's NIC scripts wrote them).
Unknown keys are ignored, so a newer NIC script can add keys without breaking an older
daemon. This module is the one place that reads and writes the format: snf-network's NIC
scripts write with `write_binding`/`remove_binding`, nfdhcpd reads with `parse_binding`.

Writes are atomic (a hidden temporary file, fsync, rename), so the daemon, which follows
the directory with inotify, only ever sees complete files; it skips names that
`is_binding_name` rejects (the temporary files).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ganeti_ext.errors import GanetiExtError
from ganeti_ext.fsutil import atomic_write
from ganeti_ext.inet import MAC, is_ifname
from ganeti_ext.truth import truth

KEYS = (
    "INDEV",
    "IP",
    "MAC",
    "HOSTNAME",
    "TAGS",
    "GATEWAY",
    "SUBNET",
    "GATEWAY6",
    "SUBNET6",
    "EUI64",
    "PRIVATE",
    "MTU",
    "MACSPOOF",
)
REQUIRED_KEYS = ("MAC", "HOSTNAME")
MAX_FILE_SIZE = 64 * 1024  # a binding is a few hundred bytes; anything bigger is junk

# Linux interface names (IFNAMSIZ - 1 bytes), the portable subset; never hidden files.
# RFC 1123 host name, optionally dotted; Ganeti instance names are FQDNs.
_HOSTNAME = re.compile(
    r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)


class BindingError(GanetiExtError):
    """A binding file (or a Binding being built) is invalid; names the file and the key."""

    def __init__(self, source: str, message: str, key: str | None = None) -> None:
        self.source = str(source)
        self.key = key
        self.message = message
        where = self.source if key is None else f"{self.source}: {key}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Binding:
    """What nfdhcpd hands the guest behind `tap`.

    `indev` is the device packets from the guest arrive on as the kernel reports it
    (the bridge in bridged mode, the tap in routed mode); `tap` is the file's name.
    """

    tap: str
    mac: str  # lower-case, colon-separated
    hostname: str
    indev: str | None = None
    ip: ipaddress.IPv4Address | None = None
    tags: tuple[str, ...] = ()
    gateway: ipaddress.IPv4Address | None = None
    subnet: ipaddress.IPv4Network | None = None
    gateway6: ipaddress.IPv6Address | None = None
    subnet6: ipaddress.IPv6Network | None = None
    eui64: ipaddress.IPv6Address | None = None
    private: bool = False
    mtu: int | None = None
    macspoof: bool = False
    extra: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        check(self)

    @property
    def mac_bytes(self) -> bytes:
        return bytes.fromhex(self.mac.replace(":", ""))

    @property
    def has_ipv4(self) -> bool:
        return self.ip is not None

    @property
    def has_ipv6(self) -> bool:
        return self.subnet6 is not None


def is_binding_name(name: str) -> bool:
    """Whether a directory entry may be a binding (not a temporary or hidden file)."""
    return is_ifname(name)


def normalize_mac(raw: str) -> str | None:
    """aa:bb:cc:dd:ee:ff from any case or '-' separators; None if it is not a MAC."""
    mac = raw.strip().lower().replace("-", ":")
    return mac if MAC.match(mac) else None


def check(b: Binding) -> None:
    """Raise BindingError if the binding's fields do not hang together."""
    source = b.tap
    if not is_binding_name(b.tap):
        raise BindingError(source, "not a valid tap interface name (1-15 of A-Za-z0-9_.-)")
    if normalize_mac(b.mac) != b.mac:
        raise BindingError(source, f"not a lower-case colon-separated MAC: {b.mac!r}", "MAC")
    if not _HOSTNAME.match(b.hostname):
        raise BindingError(source, f"not a valid host name: {b.hostname!r}", "HOSTNAME")
    if b.indev is not None and not is_binding_name(b.indev):
        raise BindingError(source, f"not a valid interface name: {b.indev!r}", "INDEV")
    if b.ip is not None and b.subnet is not None and b.ip not in b.subnet:
        raise BindingError(source, f"{b.ip} is outside SUBNET {b.subnet}", "IP")
    if b.gateway is not None and b.subnet is not None and b.gateway not in b.subnet:
        raise BindingError(source, f"{b.gateway} is outside SUBNET {b.subnet}", "GATEWAY")
    if b.eui64 is not None and b.subnet6 is not None and b.eui64 not in b.subnet6:
        raise BindingError(source, f"{b.eui64} is outside SUBNET6 {b.subnet6}", "EUI64")
    if b.mtu is not None and not 68 <= b.mtu <= 65535:
        raise BindingError(source, f"must be between 68 and 65535, got {b.mtu}", "MTU")
    for tag in b.tags:
        if not tag or any(ch.isspace() for ch in tag):
            raise BindingError(source, f"tags must be non-empty words: {tag!r}", "TAGS")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _address(source: str, key: str, raw: str, kind: type) -> object:
    try:
        return kind(raw)
    except ValueError:
        raise BindingError(source, f"not a valid {kind.__name__}: {raw!r}", key) from None


def _network(source: str, key: str, raw: str, kind: type) -> object:
    try:
        return kind(raw, strict=False)
    except ValueError:
        raise BindingError(source, f"not a valid {kind.__name__}: {raw!r}", key) from None


def _boolean(source: str, key: str, raw: str) -> bool:
    answer = truth(raw, empty=False)
    if answer is not None:
        return answer
    raise BindingError(source, f"must be yes/no (true/false, 1/0), got {raw!r}", key)


def parse_binding(text: str, *, source: str | os.PathLike[str], tap: str | None = None) -> Binding:
    """Parse a binding file's text. `source` is its path; the tap is its base name
    unless given. Raises BindingError naming the file (and the key) on any problem."""
    source = str(source)
    if tap is None:
        tap = os.path.basename(source)
    if len(text) > MAX_FILE_SIZE:
        raise BindingError(source, f"larger than {MAX_FILE_SIZE} bytes")
    values: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        if not sep or not key:
            raise BindingError(source, f"line {lineno}: not KEY=value")
        if key in values:
            raise BindingError(source, f"line {lineno}: key given twice", key)
        values[key] = _unquote(value)
    for key in REQUIRED_KEYS:
        if not values.get(key):
            raise BindingError(source, "required key is missing or empty", key)

    def get(key: str) -> str | None:
        value = values.get(key)
        return value if value else None

    mac = normalize_mac(values["MAC"])
    if mac is None:
        raise BindingError(source, f"not a MAC address: {values['MAC']!r}", "MAC")
    mtu = None
    if (raw_mtu := get("MTU")) is not None:
        try:
            mtu = int(raw_mtu, 10)
        except ValueError:
            raise BindingError(source, f"must be an integer, got {raw_mtu!r}", "MTU") from None
    ip4, net4 = ipaddress.IPv4Address, ipaddress.IPv4Network
    ip6, net6 = ipaddress.IPv6Address, ipaddress.IPv6Network
    subnet6 = _network(source, "SUBNET6", raw, net6) if (raw := get("SUBNET6")) else None
    eui64 = _address(source, "EUI64", raw, ip6) if (raw := get("EUI64")) else None
    try:
        return Binding(
            tap=tap,
            mac=mac,
            hostname=values["HOSTNAME"],
            indev=get("INDEV"),
            ip=_address(source, "IP", raw, ip4) if (raw := get("IP")) else None,
            tags=tuple((get("TAGS") or "").replace(",", " ").split()),
            gateway=_address(source, "GATEWAY", raw, ip4) if (raw := get("GATEWAY")) else None,
            subnet=_network(source, "SUBNET", raw, net4) if (raw := get("SUBNET")) else None,
            gateway6=_address(source, "GATEWAY6", raw, ip6) if (raw := get("GATEWAY6")) else None,
            subnet6=subnet6,  # type: ignore[arg-type]
            eui64=eui64,  # type: ignore[arg-type]
            private=_boolean(source, "PRIVATE", values.get("PRIVATE", "")),
            mtu=mtu,
            macspoof=_boolean(source, "MACSPOOF", values.get("MACSPOOF", "")),
            extra=tuple(sorted((k, v) for k, v in values.items() if k not in KEYS)),
        )  # type: ignore[arg-type]
    except BindingError as err:
        # check() names the tap; the caller wants the file.
        raise BindingError(source, err.message, err.key) from None


def read_binding(path: str | os.PathLike[str]) -> Binding:
    """Read and parse one binding file; BindingError if unreadable or invalid."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_FILE_SIZE + 1)
    except OSError as err:
        raise BindingError(str(path), f"cannot read: {err.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BindingError(str(path), "not valid UTF-8 text") from None
    return parse_binding(text, source=path)


def _show(value: object) -> str:
    return "" if value is None else str(value)


def format_binding(b: Binding) -> str:
    """The file text for `b` (parse_binding(format_binding(b)) == b)."""
    lines = {
        "INDEV": _show(b.indev),
        "IP": _show(b.ip),
        "MAC": b.mac,
        "HOSTNAME": b.hostname,
        "TAGS": '"' + " ".join(b.tags) + '"',
        "GATEWAY": _show(b.gateway),
        "SUBNET": _show(b.subnet),
        "GATEWAY6": _show(b.gateway6),
        "SUBNET6": _show(b.subnet6),
        "EUI64": _show(b.eui64),
        "PRIVATE": "yes" if b.private else "no",
        "MTU": _show(b.mtu),
        "MACSPOOF": "yes" if b.macspoof else "no",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def write_binding(directory: str | os.PathLike[str], b: Binding) -> Path:
    """Atomically (re)write `b`'s file in `directory`; returns its path.

    The text goes to a hidden temporary file, is fsync'ed and renamed over the binding,
    so a reader sees the old file or the new one, never a partial one (the daemon acts
    on IN_CLOSE_WRITE/IN_MOVED_TO).
    """
    final = Path(directory) / b.tap
    # 0644: nfdhcpd reads bindings after dropping root; they hold no secrets.
    atomic_write(final, format_binding(b).encode("utf-8"), mode=0o644)
    return final


def remove_binding(directory: str | os.PathLike[str], tap: str) -> bool:
    """Remove `tap`'s binding; False if there was none. Refuses names that are not taps."""
    if not is_binding_name(tap):
        raise BindingError(tap, "not a valid tap interface name")
    try:
        os.unlink(Path(directory) / tap)
    except FileNotFoundError:
        return False
    return True
