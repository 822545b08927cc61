"""The environment of ExtStorage provider scripts, checked per verb.

Volume names become file names in the store, so a name that could climb out of it
("..", "/") is rejected here, before anything touches the filesystem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ganeti_ext.environ.reader import EnvReader
from ganeti_ext.errors import EnvError

VERBS = (
    "create",
    "attach",
    "detach",
    "remove",
    "grow",
    "setinfo",
    "verify",
    "snapshot",
    "open",
    "close",
)
ACCESS_MODES = ("kernelspace", "userspace")
# EXTP_PROVIDER and EXTP_ACCESS come from Ganeti itself, not from --disk parameters.
_GANETI_SET_PARAMS = ("provider", "access")
# Ganeti's names are <uuid>.ext.disk<n> (and <name>.snap); allow a conservative superset,
# no longer than a store can name (its lock files add a suffix to the name).
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+:-]{0,199}\Z")


@dataclass(frozen=True)
class VolumeRequest:
    verb: str
    name: str | None  # None only for verify, which Ganeti may run without a volume
    uuid: str | None
    cname: str | None
    size_mib: int | None
    new_size_mib: int | None
    metadata: str | None
    snapshot_name: str | None
    snapshot_size_mib: int | None
    open_exclusive: bool
    params: Mapping[str, str]  # EXTP_ORIGIN -> "origin", without provider/access
    provider: str | None
    access: str | None


def check_volume_name(variable: str, name: str) -> str:
    """Return `name` if it is safe as a single file name, else raise EnvError."""
    if "/" in name or ".." in name or "\0" in name:
        raise EnvError(variable, f"must be a plain name without '/' or '..': {name!r}")
    if not _SAFE_NAME.fullmatch(name):
        raise EnvError(
            variable, f"must be 1-200 characters of letters, digits and _.+:- : {name!r}"
        )
    return name


def parse(verb: str, env: Mapping[str, str]) -> VolumeRequest:
    """The environment of ExtStorage script `verb`, with that verb's requirements."""
    if verb not in VERBS:
        raise ValueError(f"unknown ExtStorage verb {verb!r}")
    reader = EnvReader(env)
    name = reader.optional("VOL_NAME") if verb == "verify" else reader.required("VOL_NAME")
    if name is not None:
        check_volume_name("VOL_NAME", name)

    size = reader.integer("VOL_SIZE", required=verb == "create", minimum=1)
    new_size = reader.integer("VOL_NEW_SIZE", required=verb == "grow", minimum=1)
    metadata = reader.required("VOL_METADATA") if verb == "setinfo" else None
    snapshot_name = None
    if verb == "snapshot":
        snapshot_name = check_volume_name("VOL_SNAPSHOT_NAME", reader.required("VOL_SNAPSHOT_NAME"))
    params = reader.prefixed("EXTP_")
    return VolumeRequest(
        verb=verb,
        name=name,
        uuid=reader.optional("VOL_UUID"),
        cname=reader.optional("VOL_CNAME"),
        size_mib=size,
        new_size_mib=new_size,
        metadata=metadata,
        snapshot_name=snapshot_name,
        snapshot_size_mib=reader.integer("VOL_SNAPSHOT_SIZE", minimum=0),
        # Ganeti opens exclusively unless it says otherwise (shared during migration).
        open_exclusive=reader.boolean("VOL_OPEN_EXCLUSIVE", default=True),
        params=MappingProxyType({k: v for k, v in params.items() if k not in _GANETI_SET_PARAMS}),
        provider=reader.optional("EXTP_PROVIDER"),
        access=reader.choice("EXTP_ACCESS", ACCESS_MODES),
    )
