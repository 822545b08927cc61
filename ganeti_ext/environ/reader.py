"""Checked access to environment variables: every failure names the variable."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from types import MappingProxyType

from ganeti_ext.errors import EnvError
from ganeti_ext.inet import MAC, MAC_PREFIX
from ganeti_ext.logsetup import is_secret_name
from ganeti_ext.truth import truth

IPv4Or6Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EnvReader:
    """Reads typed values out of an environment mapping.

    Ganeti exports optional values either not at all or as an empty string (a NIC
    without an IP has IP=""), so empty counts as absent for the optional getters.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.seen: set[str] = set()  # names looked at, to tell which ones nobody understood

    def _get(self, name: str) -> str | None:
        self.seen.add(name)
        return self.env.get(name)

    def _shown(self, name: str, value: str) -> str:
        return "" if is_secret_name(name) else f": {value!r}"

    def optional(self, name: str) -> str | None:
        value = self._get(name)
        return value if value else None

    def required(self, name: str) -> str:
        value = self._get(name)
        if not value:
            raise EnvError(name, "is missing or empty")
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return None
        try:
            number = int(value, 10)
        except ValueError:
            raise EnvError(name, f"must be an integer{self._shown(name, value)}") from None
        if minimum is not None and number < minimum:
            raise EnvError(name, f"must be at least {minimum}, got {number}")
        return number

    def required_integer(self, name: str, *, minimum: int | None = None) -> int:
        number = self.integer(name, required=True, minimum=minimum)
        assert number is not None
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        answer = truth(value, empty=False)  # Ganeti writes an unset flag as ""
        if answer is not None:
            return answer
        raise EnvError(name, f"must be True or False{self._shown(name, value)}")

    def choice(self, name: str, choices: tuple[str, ...], *, required: bool = False) -> str | None:
        value = self.required(name) if required else self.optional(name)
        if value is not None and value not in choices:
            raise EnvError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def mac(self, name: str, *, required: bool = False) -> str | None:
        value = self.required(name) if required else self.optional(name)
        if value is None:
            return None
        lowered = value.lower()
        if not MAC.match(lowered):
            raise EnvError(name, f"not a MAC address: {value!r}")
        return lowered

    def mac_prefix(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        lowered = value.lower()
        if not MAC_PREFIX.match(lowered):
            raise EnvError(name, f"not a 3-byte MAC prefix (aa:bb:cc): {value!r}")
        return lowered

    def ip(self, name: str, *, version: int | None = None) -> IPv4Or6Address | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise EnvError(name, f"not an IP address: {value!r}") from None
        if version is not None and address.version != version:
            raise EnvError(name, f"not an IPv{version} address: {value!r}")
        return address

    def ipv4(self, name: str) -> ipaddress.IPv4Address | None:
        address = self.ip(name, version=4)
        assert address is None or isinstance(address, ipaddress.IPv4Address)
        return address

    def ipv6(self, name: str) -> ipaddress.IPv6Address | None:
        address = self.ip(name, version=6)
        assert address is None or isinstance(address, ipaddress.IPv6Address)
        return address

    def network(
        self, name: str, *, version: int
    ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            # strict: Ganeti stores the network address itself; host bits mean a typo.
            subnet = ipaddress.ip_network(value, strict=True)
        except ValueError as err:
            raise EnvError(name, f"not a subnet ({err}): {value!r}") from None
        if subnet.version != version:
            raise EnvError(name, f"not an IPv{version} subnet: {value!r}")
        return subnet

    def words(self, name: str) -> tuple[str, ...]:
        """A space-separated list (tags, node lists); absent means empty."""
        return tuple((self._get(name) or "").split())

    def prefixed(self, prefix: str, *, lower: bool = True) -> Mapping[str, str]:
        """Variables starting with `prefix`, keyed by the rest (lower-cased by default:
        OSP_IMG_ID -> img_id; Ganeti upper-cases parameter names on the way out)."""
        found = {}
        for name, value in sorted(self.env.items()):
            if name.startswith(prefix) and len(name) > len(prefix):
                self.seen.add(name)
                rest = name[len(prefix) :]
                found[rest.lower() if lower else rest] = value
        return MappingProxyType(found)


def read_env_file(text: str) -> dict[str, str]:
    """Parse KEY=value lines (captured environments); '#' lines and blanks are skipped.

    Values are taken literally up to the end of the line (no quoting), as `env` prints.
    """
    result: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a KEY=value line: {line!r}")
        result[name.strip()] = value
    return result
