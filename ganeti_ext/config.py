"""INI configuration files read against a declared schema into frozen dataclasses.

A component declares its file as a frozen dataclass of sections, each a frozen dataclass
whose fields carry a `spec` (kind, bounds, help) in their metadata:

    @dataclass(frozen=True, kw_only=True)
    class Store:
        path: Path = field(default=Path("/srv/archipelago"), metadata=spec("path", help=...))
        urls: tuple[str, ...] = field(metadata=spec("url-list"))  # no default: required

    @dataclass(frozen=True, kw_only=True)
    class ArchipelagoConfig:
        store: Store = field(default_factory=Store)

and calls `load(ArchipelagoConfig, "/etc/archipelago/archipelago.conf")`. Unknown sections
and keys are errors (a typo must not silently fall back to a default), and every error
names the file, the section and the key.
"""

from __future__ import annotations

import configparser
import dataclasses
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ganeti_ext.errors import ConfigError, ValidationError
from ganeti_ext.logsetup import is_secret_name
from ganeti_ext.truth import truth

KINDS = ("str", "int", "float", "bool", "size", "list", "url-list", "path", "choice")
_SIZE_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SETTING = "ganeti_ext.config.setting"

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Setting:
    """How one key is checked and converted."""

    kind: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""


def spec(
    kind: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: Sequence[str] = (),
    help: str = "",
) -> Mapping[str, Setting]:
    """Field metadata declaring a key; a field without a default is a required key."""
    if kind not in KINDS:
        raise ValueError(f"unknown setting kind {kind!r}")
    if kind == "choice" and not choices:
        raise ValueError("a choice setting needs choices")
    return {_SETTING: Setting(kind, minimum, maximum, tuple(choices), help)}


def load(schema: type[T], path: str | PathLike[str], *, must_exist: bool = False) -> T:
    """Read `path` against `schema` and return the typed, frozen configuration.

    A missing file means "all defaults" unless `must_exist` is set or the schema has a
    required key. Raises ConfigError naming the file (and section and key) otherwise.
    """
    path = Path(path)
    parser = _parser()
    try:
        with open(path, encoding="utf-8") as stream:
            parser.read_file(stream, source=str(path))
    except FileNotFoundError:
        if must_exist:
            raise ConfigError(path, "file does not exist") from None
    except OSError as err:
        raise ConfigError(path, f"cannot read: {err.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, "not valid UTF-8 text") from None
    except configparser.Error as err:
        raise ConfigError(path, _describe_parse_error(err)) from None
    return _build(schema, parser, path)


def loads(schema: type[T], text: str, source: str = "<string>") -> T:
    """Like load, from text (for tests and for validating a file before installing it)."""
    parser = _parser()
    try:
        parser.read_string(text, source=source)
    except configparser.Error as err:
        raise ConfigError(source, _describe_parse_error(err)) from None
    return _build(schema, parser, Path(source))


def _parser() -> configparser.ConfigParser:
    # No interpolation ('%' is legal in passwords) and no DEFAULT section magic: a
    # [DEFAULT] section is just an unknown section here.
    return configparser.ConfigParser(
        interpolation=None, default_section="\0no-default-section", strict=True
    )


def _describe_parse_error(err: configparser.Error) -> str:
    if isinstance(err, configparser.MissingSectionHeaderError):
        return f"line {err.lineno}: a [section] header must come first"
    if isinstance(err, configparser.DuplicateOptionError):
        return f"line {err.lineno}: [{err.section}] {err.option}: key given twice"
    if isinstance(err, configparser.DuplicateSectionError):
        return f"line {err.lineno}: section [{err.section}] given twice"
    if isinstance(err, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in err.errors)
        return f"cannot parse line(s) {lines}"
    return str(err).splitlines()[0]


def _sections(schema: type) -> dict[str, type]:
    # A section is a field whose default_factory is itself a dataclass.
    return {
        field.name: field.default_factory
        for field in dataclasses.fields(schema)
        if dataclasses.is_dataclass(field.default_factory)
    }


def _settings(section_cls: type) -> dict[str, tuple[Setting, bool]]:
    """Key -> (its spec, whether it is required)."""
    return {
        field.name: (
            field.metadata[_SETTING],
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING,
        )
        for field in dataclasses.fields(section_cls)
        if _SETTING in field.metadata
    }


def _build(schema: type[T], parser: configparser.ConfigParser, path: Path) -> T:
    sections = _sections(schema)
    for name in parser.sections():
        if name not in sections:
            known = ", ".join(sorted(sections))
            raise ConfigError(path, f"unknown section (known: {known})", section=name)
    built = {}
    for section_name, section_cls in sections.items():
        declared = _settings(section_cls)
        given = dict(parser.items(section_name)) if parser.has_section(section_name) else {}
        for key in given:
            if key not in declared:
                known = ", ".join(sorted(declared))
                raise ConfigError(path, f"unknown key (known: {known})", section_name, key)
        values = {}
        for key, (setting, required) in declared.items():
            if key in given:
                values[key] = _convert(given[key], setting, path, section_name, key)
            elif required:
                raise ConfigError(path, "required key is missing", section_name, key)
        built[section_name] = section_cls(**values)
    return schema(**built)


def _parse_size(raw: str) -> int:
    """Bytes from "4M", "512K", "1G" or a plain number of bytes."""
    text = raw.strip().upper().removesuffix("B").removesuffix("I")
    suffix = text[-1:] if text[-1:] in _SIZE_SUFFIXES else ""
    number = int(text[: len(text) - len(suffix)], 10)
    if number < 0:
        raise ValueError(raw)
    return number * _SIZE_SUFFIXES[suffix]


def parse_size(raw: str, what: str) -> int:
    """A size given on a command line ("4M", "10G", bytes); errors name `what`."""
    try:
        return _parse_size(raw)
    except (ValueError, IndexError):
        raise ValidationError(f"{what}: {raw!r} {_NUMBER_NAMES['size']}") from None


_NUMBER_PARSERS = {"int": lambda raw: int(raw, 10), "float": float, "size": _parse_size}
_NUMBER_NAMES = {
    "int": "must be an integer",
    "float": "must be a number",
    "size": "must be a size in bytes, optionally with a K, M, G or T suffix",
}


def _convert(raw: str, setting: Setting, path: Path, section_name: str, key: str) -> Any:
    def fail(problem: str) -> ConfigError:
        shown = "" if is_secret_name(key) else f", got {raw!r}"
        return ConfigError(path, problem + shown, section_name, key)

    kind = setting.kind
    if kind == "str":
        return raw
    if kind == "bool":
        answer = truth(raw)
        if answer is not None:
            return answer
        raise fail("must be yes/no (true/false, on/off, 1/0)")
    if kind in ("int", "float", "size"):
        try:
            number: int | float = _NUMBER_PARSERS[kind](raw)
        except ValueError:
            raise fail(_NUMBER_NAMES[kind]) from None
        if setting.minimum is not None and number < setting.minimum:
            raise fail(f"must be at least {setting.minimum:g}")
        if setting.maximum is not None and number > setting.maximum:
            raise fail(f"must be at most {setting.maximum:g}")
        return number
    if kind == "path":
        if not raw.startswith("/"):
            raise fail("must be an absolute path")
        return Path(raw)
    if kind == "choice":
        if raw not in setting.choices:
            raise fail(f"must be one of {', '.join(setting.choices)}")
        return raw
    items = tuple(item for item in raw.replace(",", " ").split() if item)
    if kind == "url-list":
        if not items:
            raise fail("needs at least one URL")
        for position, url in enumerate(items, start=1):
            try:
                parts = urlsplit(url)
                valid = bool(parts.scheme and parts.hostname)
            except ValueError:
                valid = False
            if not valid:
                # Never echo a malformed URL: where a password ends cannot be known.
                raise ConfigError(
                    path,
                    f"URL {position} is not scheme://[user:password@]host...",
                    section_name,
                    key,
                )
    return items
