"""The environment of OS definition scripts (Ganeti OS API 20), one parser per script.

OS parameters (OSP_*) are secrets as often as not (img_passwd, config_url): they are kept
out of every repr, so logging a parsed request cannot leak them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ganeti_ext.environ.network import NIC_MODES, NetworkInfo, read_network
from ganeti_ext.environ.reader import EnvReader, IPv4Or6Address
from ganeti_ext.errors import EnvError

API_VERSION = 20
DISK_ACCESS_MODES = ("rw", "ro")


@dataclass(frozen=True)
class OsSettings:
    """What every OS script gets; all that `verify` gets."""

    api_version: int
    os_name: str
    variant: str | None
    debug_level: int
    params: Mapping[str, str] = field(repr=False)  # OSP_IMG_ID -> "img_id"


@dataclass(frozen=True)
class DiskInfo:
    index: int
    path: str | None  # block device or file; absent when only userspace access exists
    uri: str | None
    size_mib: int | None
    uuid: str | None
    name: str | None
    access: str | None
    backend_type: str | None  # "block" or "file:<driver>"
    frontend_type: str | None


@dataclass(frozen=True)
class NicInfo:
    index: int
    mac: str
    ip: IPv4Or6Address | None
    mode: str
    link: str | None
    bridge: str | None
    vlan: str | None
    uuid: str | None
    name: str | None
    frontend_type: str | None
    network: NetworkInfo | None


@dataclass(frozen=True)
class InstanceInfo:
    name: str
    uuid: str | None
    os: str | None
    primary_node: str | None  # a node UUID in Ganeti 3.0
    secondary_nodes: tuple[str, ...]
    hypervisor: str | None
    hvparams: Mapping[str, str]  # INSTANCE_HV_kernel_path -> "kernel_path" (case kept)
    beparams: Mapping[str, str]
    disks: tuple[DiskInfo, ...]
    nics: tuple[NicInfo, ...]


@dataclass(frozen=True)
class CreateRequest:
    os: OsSettings
    instance: InstanceInfo
    reinstall: bool


@dataclass(frozen=True)
class RenameRequest:
    os: OsSettings
    instance: InstanceInfo  # instance.name is the new name
    old_name: str


@dataclass(frozen=True)
class TransferRequest:
    """An import or export of one disk (IMPORT_*/EXPORT_* variables)."""

    os: OsSettings
    instance: InstanceInfo
    disk_index: int
    disk_path: str | None
    disk_uri: str | None


def parse_verify(env: Mapping[str, str]) -> OsSettings:
    """The `verify` script's environment: OS_*, OSP_* and DEBUG_LEVEL only."""
    reader = EnvReader(env)
    api_version = reader.integer("OS_API_VERSION")
    if api_version is not None and api_version != API_VERSION:
        raise EnvError("OS_API_VERSION", f"must be {API_VERSION}, got {api_version}")
    debug_level = reader.integer("DEBUG_LEVEL", minimum=0)
    return OsSettings(
        api_version=API_VERSION if api_version is None else api_version,
        os_name=reader.required("OS_NAME"),
        variant=reader.optional("OS_VARIANT"),
        debug_level=debug_level or 0,
        params=reader.prefixed("OSP_"),
    )


def parse_create(env: Mapping[str, str]) -> CreateRequest:
    """The `create` script's environment (INSTANCE_REINSTALL=1 on reinstall)."""
    reader = EnvReader(env)
    return CreateRequest(
        os=parse_verify(env),
        instance=_instance(reader),
        reinstall=reader.boolean("INSTANCE_REINSTALL"),
    )


def parse_rename(env: Mapping[str, str]) -> RenameRequest:
    """The `rename` script's environment: INSTANCE_NAME is new, OLD_INSTANCE_NAME old."""
    reader = EnvReader(env)
    return RenameRequest(
        os=parse_verify(env),
        instance=_instance(reader),
        old_name=reader.required("OLD_INSTANCE_NAME"),
    )


def parse_import(env: Mapping[str, str]) -> TransferRequest:
    """The `import` script's environment (IMPORT_INDEX, IMPORT_DISK_PATH/URI)."""
    return _transfer(env, "IMPORT")


def parse_export(env: Mapping[str, str]) -> TransferRequest:
    """The `export` script's environment (EXPORT_INDEX, EXPORT_DISK_PATH/URI)."""
    return _transfer(env, "EXPORT")


def _transfer(env: Mapping[str, str], kind: str) -> TransferRequest:
    reader = EnvReader(env)
    instance = _instance(reader)
    index = reader.required_integer(f"{kind}_INDEX", minimum=0)
    if index >= len(instance.disks):
        raise EnvError(f"{kind}_INDEX", f"no disk {index}: the instance has {len(instance.disks)}")
    # EXPORT_DEVICE/IMPORT_DEVICE is the historical alias of *_DISK_PATH.
    path = reader.optional(f"{kind}_DISK_PATH") or reader.optional(f"{kind}_DEVICE")
    uri = reader.optional(f"{kind}_DISK_URI")
    if path is None and uri is None:
        raise EnvError(f"{kind}_DISK_PATH", f"is missing, and so is {kind}_DISK_URI")
    return TransferRequest(parse_verify(env), instance, index, path, uri)


def _instance(reader: EnvReader) -> InstanceInfo:
    disk_count = reader.required_integer("DISK_COUNT", minimum=0)
    nic_count = reader.required_integer("NIC_COUNT", minimum=0)
    return InstanceInfo(
        name=reader.required("INSTANCE_NAME"),
        uuid=reader.optional("INSTANCE_UUID"),
        os=reader.optional("INSTANCE_OS"),
        primary_node=reader.optional("INSTANCE_PRIMARY_NODE"),
        secondary_nodes=reader.words("INSTANCE_SECONDARY_NODES"),
        hypervisor=reader.optional("HYPERVISOR"),
        hvparams=reader.prefixed("INSTANCE_HV_", lower=False),
        beparams=reader.prefixed("INSTANCE_BE_", lower=False),
        disks=tuple(_disk(reader, index) for index in range(disk_count)),
        nics=tuple(_nic(reader, index) for index in range(nic_count)),
    )


def _disk(reader: EnvReader, index: int) -> DiskInfo:
    prefix = f"DISK_{index}_"
    path = reader.optional(prefix + "PATH")
    uri = reader.optional(prefix + "URI")
    if path is None and uri is None:
        raise EnvError(prefix + "PATH", f"is missing, and so is {prefix}URI")
    return DiskInfo(
        index=index,
        path=path,
        uri=uri,
        size_mib=reader.integer(prefix + "SIZE", minimum=0),
        uuid=reader.optional(prefix + "UUID"),
        name=reader.optional(prefix + "NAME"),
        access=reader.choice(prefix + "ACCESS", DISK_ACCESS_MODES),
        backend_type=reader.optional(prefix + "BACKEND_TYPE"),
        frontend_type=reader.optional(prefix + "FRONTEND_TYPE"),
    )


def _nic(reader: EnvReader, index: int) -> NicInfo:
    prefix = f"NIC_{index}_"
    mac = reader.mac(prefix + "MAC", required=True)
    mode = reader.choice(prefix + "MODE", NIC_MODES, required=True)
    assert mac is not None and mode is not None
    return NicInfo(
        index=index,
        mac=mac,
        ip=reader.ip(prefix + "IP"),
        mode=mode,
        link=reader.optional(prefix + "LINK"),
        bridge=reader.optional(prefix + "BRIDGE"),
        vlan=reader.optional(prefix + "VLAN"),
        uuid=reader.optional(prefix + "UUID"),
        name=reader.optional(prefix + "NAME"),
        frontend_type=reader.optional(prefix + "FRONTEND_TYPE"),
        network=read_network(reader, prefix),
    )
