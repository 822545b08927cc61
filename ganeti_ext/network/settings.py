"""/etc/default/snf-network: host-wide settings of the NIC scripts, validated at start.

The file is shell-style `KEY=value` lines (values may be quoted; nothing is executed).
Unknown keys are errors, so a typo never silently falls back to a default; every error
names the file and the key.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from ganeti_ext import firewall, paths
from ganeti_ext.errors import ConfigError
from ganeti_ext.inet import MAC

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*\Z")


@dataclass(frozen=True)
class Settings:
    state_dir: Path = Path(paths.SNF_NETWORK_STATE_DIR)
    nfdhcpd_state_dir: Path = Path(paths.NFDHCPD_STATE_DIR)
    tap_constant_mac: str = "cc:47:52:4e:45:54"
    mac_mask: str = "ff:ff:f0:00:00:00"
    ip_less_routed_tag: str = "ip-less-routed"
    nfdhcpd_tag: str = "nfdhcpd"
    private_filtered_tag: str = "private-filtered"
    masq_tag: str = "masq"
    firewall_tag_prefix: str = firewall.DEFAULT_TAG_PREFIX
    # Two bits of the packet mark carry a bridged packet's firewall profile from the
    # bridge table to the inet one (see nftrules); nothing else on the host may use them.
    firewall_mark_mask: int = 0x00300000


_FIELDS = {
    "STATE_DIR": "state_dir",
    "NFDHCPD_STATE_DIR": "nfdhcpd_state_dir",
    "TAP_CONSTANT_MAC": "tap_constant_mac",
    "MAC_MASK": "mac_mask",
    "IP_LESS_ROUTED_TAG": "ip_less_routed_tag",
    "NFDHCPD_TAG": "nfdhcpd_tag",
    "PRIVATE_FILTERED_TAG": "private_filtered_tag",
    "MASQ_TAG": "masq_tag",
    "FIREWALL_TAG_PREFIX": "firewall_tag_prefix",
    "FIREWALL_MARK_MASK": "firewall_mark_mask",
}


def _error(source: str, key: str, message: str) -> ConfigError:
    # A shell-style file has no sections: the key goes into the message.
    error = ConfigError(source, f"{key}: {message}")
    error.key = key
    return error


def parses(text: str, source: str = "<string>") -> Settings:
    """Settings from the text of a defaults file (pure; see module doc)."""
    values: dict[str, object] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        stripped = stripped.removeprefix("export ").strip()
        key, sep, raw = stripped.partition("=")
        if not sep or not _KEY.match(key):
            raise ConfigError(source, f"line {lineno}: not a KEY=value line")
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise _error(source, key, f"unknown key (known: {known})")
        if key in values:
            raise _error(source, key, f"line {lineno}: key given twice")
        try:
            words = shlex.split(raw, comments=True)
        except ValueError:
            raise _error(source, key, f"line {lineno}: unbalanced quotes") from None
        if len(words) != 1:
            raise _error(source, key, "needs exactly one value (quote spaces)")
        values[key] = _convert(source, key, words[0])
    return Settings(**{_FIELDS[key]: value for key, value in values.items()})


def _convert(source: str, key: str, value: str) -> object:
    if key.endswith("_DIR"):
        if not value.startswith("/"):
            raise _error(source, key, f"must be an absolute path, got {value!r}")
        return Path(value)
    if key in ("TAP_CONSTANT_MAC", "MAC_MASK"):
        mac = value.lower()
        if not MAC.match(mac):
            raise _error(source, key, f"not a MAC address (aa:bb:cc:dd:ee:ff): {value!r}")
        if key == "TAP_CONSTANT_MAC" and int(mac[:2], 16) & 1:
            raise _error(source, key, f"must be a unicast MAC: {value!r}")
        return mac
    if key == "FIREWALL_MARK_MASK":
        return _mark_mask(source, key, value)
    if any(char.isspace() for char in value) or not value:
        raise _error(source, key, f"must be one word, got {value!r}")
    return value


def _mark_mask(source: str, key: str, value: str) -> int:
    try:
        mask = int(value, 0)
    except ValueError:
        raise _error(source, key, f"not a number (0x00300000): {value!r}") from None
    if not 0 < mask <= 0xFFFFFFFF or mask.bit_count() != 2:
        raise _error(source, key, f"must be a 32-bit mask with exactly two bits set: {value!r}")
    return mask


def load(path: str | PathLike[str] = paths.SNF_NETWORK_DEFAULTS) -> Settings:
    """Read the defaults file; a missing file means every default."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(path, f"cannot read: {err}") from None
    return parses(text, str(path))
