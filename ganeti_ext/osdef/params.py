"""snf-image's OS parameters: parsed, checked, and kept out of logs.

Error messages name the parameter and what is wrong with it, never its value: most of
these parameters are secrets or carry user data.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ganeti_ext.errors import ValidationError

NULL_IMAGE = "null"  # img_id: the disk already holds the image (cloned by storage)
IMAGE_FORMATS = ("diskdump", "extdump", "qcow2", "ntfsdump")
UNSUPPORTED_FORMATS = ("ntfsdump",)  # Windows: not personalized yet
MAX_USERDATA_BYTES = 64 * 1024  # what cloud-init data sources commonly accept

# Name -> one-line description; parameters.list says the same (a unit test checks).
PARAMETERS: Mapping[str, str] = {
    "img_id": "Image to deploy: an image store reference, or null when the disk already "
    "holds the image",
    "img_format": "Image format: diskdump, extdump or qcow2 (any of them xz, zstd or gzip "
    "compressed)",
    "img_checksum": "Expected SHA-256 of the image as fetched: sha256:<hex>",
    "img_passwd": "Password to set for the image's users (exclusive with img_passwd_hash)",
    "img_passwd_hash": "Password hash (crypt format) to set (exclusive with img_passwd)",
    "auth_keys": "SSH public keys to authorize for the image's users, one per line",
    "img_properties": "JSON object of image properties (OSFAMILY, ROOT_PARTITION, USERS, ...)",
    "img_personality": "JSON list of files to inject: {path, contents (base64), owner, "
    "group, mode}",
    "inst_properties": "JSON object of instance properties overriding image properties",
    "config_url": "URL to fetch the other parameters from once, keeping secrets out of Ganeti",
    "cloud_userdata": "User data handed to cloud-init in the instance",
}
_PERSONALITY_KEYS = {"path", "contents", "owner", "group", "mode"}


@dataclass(frozen=True)
class PersonalityFile:
    path: str
    contents: bytes = field(repr=False)
    owner: str | None
    group: str | None
    mode: int | None


@dataclass(frozen=True)
class SnfImageParams:
    """Checked OS parameters; secret ones are excluded from repr()."""

    img_id: str | None
    img_format: str | None
    img_checksum: str | None
    img_passwd: str | None = field(repr=False)
    img_passwd_hash: str | None = field(repr=False)
    auth_keys: tuple[str, ...] = field(repr=False)
    img_properties: Mapping[str, str]  # keys upper-cased: properties are case-insensitive
    img_personality: tuple[PersonalityFile, ...] = field(repr=False)
    inst_properties: Mapping[str, str]
    config_url: str | None = field(repr=False)
    cloud_userdata: str | None = field(repr=False)

    @property
    def is_null_image(self) -> bool:
        return self.img_id == NULL_IMAGE


def parse_params(osparams: Mapping[str, str]) -> SnfImageParams:
    """Check the OS parameters (OSP_* lower-cased); raises ValidationError naming one."""
    for name in osparams:
        if name not in PARAMETERS:
            raise ValidationError(f"OS parameter {name}: unknown (known: {', '.join(PARAMETERS)})")

    def get(name: str) -> str | None:
        value = osparams.get(name)
        return value if value else None

    img_format = get("img_format")
    if img_format is not None and img_format not in IMAGE_FORMATS:
        raise ValidationError(
            f"OS parameter img_format: must be one of {', '.join(IMAGE_FORMATS)}, "
            f"got {img_format!r}"
        )
    if img_format in UNSUPPORTED_FORMATS:
        raise ValidationError(
            f"OS parameter img_format: {img_format} (Windows) images are not supported yet"
        )
    checksum = get("img_checksum")
    if checksum is not None:
        algorithm, _, digest = checksum.partition(":")
        if (
            algorithm != "sha256"
            or len(digest) != 64
            or not all(c in "0123456789abcdef" for c in digest.lower())
        ):
            raise ValidationError("OS parameter img_checksum: must be sha256:<64 hex digits>")
    passwd, passwd_hash = get("img_passwd"), get("img_passwd_hash")
    if passwd is not None and passwd_hash is not None:
        raise ValidationError(
            "OS parameters img_passwd and img_passwd_hash: give one or the other, not both"
        )
    if passwd_hash is not None:
        _check_passwd_hash(passwd_hash)
    if passwd is not None and any(char in passwd for char in "\n\r\0"):
        raise ValidationError("OS parameter img_passwd: must not contain line breaks or NUL")
    config_url = get("config_url")
    if config_url is not None:
        try:
            parts = urlsplit(config_url)
        except ValueError:  # e.g. an unclosed [ of an IPv6 address
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationError("OS parameter config_url: must be an http(s) URL")
    userdata = get("cloud_userdata")
    if userdata is not None and len(userdata.encode()) > MAX_USERDATA_BYTES:
        raise ValidationError(
            f"OS parameter cloud_userdata: larger than {MAX_USERDATA_BYTES // 1024} KiB"
        )
    return SnfImageParams(
        img_id=get("img_id"),
        img_format=img_format,
        img_checksum=checksum.lower() if checksum else None,
        img_passwd=passwd,
        img_passwd_hash=passwd_hash,
        auth_keys=_auth_keys(get("auth_keys")),
        img_properties=_properties("img_properties", get("img_properties")),
        img_personality=_personality(get("img_personality")),
        inst_properties=_properties("inst_properties", get("inst_properties")),
        config_url=config_url,
        cloud_userdata=userdata,
    )


def _check_passwd_hash(value: str) -> None:
    # It goes into /etc/shadow: a ':' or line break there would corrupt the file.
    if not value.startswith("$") or any(char in value for char in ": \t\n\r\0"):
        raise ValidationError(
            "OS parameter img_passwd_hash: must be a crypt(3) hash like $6$salt$hash "
            "(no ':' or whitespace)"
        )


def _auth_keys(value: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    keys = tuple(line.strip() for line in value.splitlines() if line.strip())
    for number, key in enumerate(keys, start=1):
        if len(key.split()) < 2:
            raise ValidationError(
                f"OS parameter auth_keys: key {number} is not '<type> <base64 key> [comment]'"
            )
    return keys


def _json(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as err:
        raise ValidationError(f"OS parameter {name}: not valid JSON ({err.msg})") from None


def _properties(name: str, value: str | None) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    data = _json(name, value)
    if not isinstance(data, dict):
        raise ValidationError(f"OS parameter {name}: must be a JSON object")
    properties: dict[str, str] = {}
    for key, item in data.items():
        if isinstance(item, bool):
            item = "yes" if item else "no"
        elif isinstance(item, int | float):
            item = str(item)
        elif not isinstance(item, str):
            raise ValidationError(
                f"OS parameter {name}: property {key} must be a string, number or boolean"
            )
        upper = key.upper()
        if upper in properties:
            raise ValidationError(f"OS parameter {name}: property {upper} given twice")
        properties[upper] = item
    return MappingProxyType(properties)


def _personality(value: str | None) -> tuple[PersonalityFile, ...]:
    if value is None:
        return ()
    data = _json("img_personality", value)
    if not isinstance(data, list):
        raise ValidationError("OS parameter img_personality: must be a JSON list of objects")
    files = []
    for number, entry in enumerate(data):
        where = f"OS parameter img_personality: entry {number}"
        if not isinstance(entry, dict):
            raise ValidationError(f"{where}: must be an object")
        unknown = set(entry) - _PERSONALITY_KEYS
        if unknown:
            raise ValidationError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        path = entry.get("path")
        if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
            raise ValidationError(f"{where}: path must be an absolute path")
        if ".." in path.split("/") or not path.isprintable() or path.endswith("/"):
            raise ValidationError(f"{where}: path must name a file, without '..'")
        contents = entry.get("contents")
        if not isinstance(contents, str):
            raise ValidationError(f"{where}: contents must be a base64 string")
        try:
            decoded = base64.b64decode(contents, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"{where}: contents is not valid base64") from None
        owner, group, mode = entry.get("owner"), entry.get("group"), entry.get("mode")
        for key, item in (("owner", owner), ("group", group)):
            if item is not None and (not isinstance(item, str) or not item):
                raise ValidationError(f"{where}: {key} must be a user/group name")
        if mode is not None and (
            isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= 0o7777
        ):
            raise ValidationError(f"{where}: mode must be an integer from 0 to 4095 (0o7777)")
        files.append(PersonalityFile(path, decoded, owner, group, mode))
    return tuple(files)
