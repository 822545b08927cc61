"""The environment of Ganeti hooks (GANETI_*), both phases.

In the post phase Ganeti exports the pre-phase values again as GANETI_* and the values
after the operation as GANETI_POST_*; `HookEnv.pre` and `HookEnv.post` are those two
views. Variables no field covers are kept in `HookEnv.unknown` rather than dropped, as
hook environments differ per opcode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ganeti_ext.environ.network import NetworkInfo, read_network
from ganeti_ext.environ.reader import EnvReader, IPv4Or6Address

PHASES = ("pre", "post")


@dataclass(frozen=True)
class HookNic:
    index: int
    name: str | None
    uuid: str | None
    ip: IPv4Or6Address | None
    mac: str | None
    mode: str | None
    link: str | None
    vlan: str | None
    bridge: str | None
    network: NetworkInfo | None


@dataclass(frozen=True)
class HookDisk:
    index: int
    name: str | None
    uuid: str | None
    size_mib: int | None
    mode: str | None
    dev_type: str | None
    provider: str | None  # ext disks
    id: str | None  # the storage-level name (e.g. <uuid>.ext.disk0)


@dataclass(frozen=True)
class HookInstance:
    name: str
    primary: str | None
    secondaries: tuple[str, ...]
    os_type: str | None
    status: str | None
    memory: int | None
    vcpus: int | None
    hypervisor: str | None
    disk_template: str | None
    tags: tuple[str, ...]
    nics: tuple[HookNic, ...]
    disks: tuple[HookDisk, ...]
    hvparams: Mapping[str, str]
    beparams: Mapping[str, str]


@dataclass(frozen=True)
class HookGroup:
    name: str
    network_mode: str | None
    network_link: str | None
    network_vlan: str | None


@dataclass(frozen=True)
class HookView:
    """The opcode-specific variables of one phase (GANETI_* or GANETI_POST_*)."""

    op_target: str | None
    instance: HookInstance | None
    instance_new_name: str | None
    migrate_live: bool | None
    old_primary: str | None
    new_primary: str | None
    network: NetworkInfo | None
    group: HookGroup | None
    # network-rename (Ganeti >= 3.1) names the network only by these two.
    old_name: str | None = None
    new_name: str | None = None


@dataclass(frozen=True)
class HookEnv:
    hooks_path: str  # e.g. "instance-start"
    phase: str  # "pre" or "post"
    version: int
    op_code: str
    object_type: str | None
    cluster: str | None
    master: str | None
    pre: HookView
    post: HookView | None  # only in the post phase
    raw: Mapping[str, str]  # every GANETI_* variable as given
    unknown: Mapping[str, str]  # the GANETI_* variables no field above covers


def parse(env: Mapping[str, str]) -> HookEnv:
    """Parse a hook's environment; raises EnvError naming the variable on bad input."""
    reader = EnvReader(env)
    phase = reader.choice("GANETI_HOOKS_PHASE", PHASES, required=True)
    assert phase is not None
    header = dict(
        hooks_path=reader.required("GANETI_HOOKS_PATH"),
        phase=phase,
        version=reader.required_integer("GANETI_HOOKS_VERSION", minimum=1),
        op_code=reader.required("GANETI_OP_CODE"),
        object_type=reader.optional("GANETI_OBJECT_TYPE"),
        cluster=reader.optional("GANETI_CLUSTER"),
        master=reader.optional("GANETI_MASTER"),
    )
    reader.optional("GANETI_DATA_DIR")  # known, and of no use to us
    pre = _view(reader, "GANETI_")
    post = _view(reader, "GANETI_POST_") if phase == "post" else None
    raw = {name: value for name, value in sorted(env.items()) if name.startswith("GANETI_")}
    unknown = {name: value for name, value in raw.items() if name not in reader.seen}
    return HookEnv(
        **header,
        pre=pre,
        post=post,
        raw=MappingProxyType(raw),
        unknown=MappingProxyType(unknown),
    )


def _view(reader: EnvReader, prefix: str) -> HookView:
    live = reader.optional(prefix + "MIGRATE_LIVE")
    if live is not None:
        migrate_live: bool | None = reader.boolean(prefix + "MIGRATE_LIVE")
    else:
        migrate_live = None
    reader.optional(prefix + "MIGRATE_CLEANUP")
    return HookView(
        op_target=reader.optional(prefix + "OP_TARGET"),
        instance=_instance(reader, prefix + "INSTANCE_"),
        instance_new_name=reader.optional(prefix + "INSTANCE_NEW_NAME"),
        migrate_live=migrate_live,
        old_primary=reader.optional(prefix + "OLD_PRIMARY"),
        new_primary=reader.optional(prefix + "NEW_PRIMARY"),
        network=read_network(reader, prefix),
        group=_group(reader, prefix + "GROUP_"),
        old_name=reader.optional(prefix + "OLD_NAME"),
        new_name=reader.optional(prefix + "NEW_NAME"),
    )


def _count(reader: EnvReader, name: str) -> int:
    return reader.integer(name, minimum=0) or 0


def _instance(reader: EnvReader, prefix: str) -> HookInstance | None:
    name = reader.optional(prefix + "NAME")
    if name is None:
        return None
    # MINMEM/MAXMEM are read so they do not count as unknown; MEMORY equals MAXMEM.
    reader.integer(prefix + "MINMEM", minimum=0)
    reader.integer(prefix + "MAXMEM", minimum=0)
    return HookInstance(
        name=name,
        primary=reader.optional(prefix + "PRIMARY"),
        secondaries=reader.words(prefix + "SECONDARIES"),
        os_type=reader.optional(prefix + "OS_TYPE"),
        status=reader.optional(prefix + "STATUS"),
        memory=reader.integer(prefix + "MEMORY", minimum=0),
        vcpus=reader.integer(prefix + "VCPUS", minimum=0),
        hypervisor=reader.optional(prefix + "HYPERVISOR"),
        disk_template=reader.optional(prefix + "DISK_TEMPLATE"),
        tags=reader.words(prefix + "TAGS"),
        nics=tuple(
            _nic(reader, f"{prefix}NIC{index}_", index)
            for index in range(_count(reader, prefix + "NIC_COUNT"))
        ),
        disks=tuple(
            _disk(reader, f"{prefix}DISK{index}_", index)
            for index in range(_count(reader, prefix + "DISK_COUNT"))
        ),
        hvparams=reader.prefixed(prefix + "HV_", lower=False),
        beparams=reader.prefixed(prefix + "BE_", lower=False),
    )


def _optional_word(reader: EnvReader, name: str) -> str | None:
    # Ganeti formats Python values with str(), so an unset value can arrive as "None".
    value = reader.optional(name)
    return None if value == "None" else value


def _nic(reader: EnvReader, prefix: str, index: int) -> HookNic:
    return HookNic(
        index=index,
        name=reader.optional(prefix + "NAME"),
        uuid=reader.optional(prefix + "UUID"),
        ip=reader.ip(prefix + "IP"),
        mac=reader.mac(prefix + "MAC"),
        mode=reader.optional(prefix + "MODE"),
        link=reader.optional(prefix + "LINK"),
        vlan=_optional_word(reader, prefix + "VLAN"),
        bridge=reader.optional(prefix + "BRIDGE"),
        network=read_network(reader, prefix),
    )


def _disk(reader: EnvReader, prefix: str, index: int) -> HookDisk:
    return HookDisk(
        index=index,
        name=reader.optional(prefix + "NAME"),
        uuid=reader.optional(prefix + "UUID"),
        size_mib=reader.integer(prefix + "SIZE", minimum=0),
        mode=reader.optional(prefix + "MODE"),
        dev_type=reader.optional(prefix + "DEV_TYPE"),
        provider=reader.optional(prefix + "PROVIDER"),
        id=reader.optional(prefix + "ID"),
    )


def _group(reader: EnvReader, prefix: str) -> HookGroup | None:
    name = reader.optional(prefix + "NAME")
    if name is None:
        return None
    return HookGroup(
        name=name,
        network_mode=reader.optional(prefix + "NETWORK_MODE"),
        network_link=reader.optional(prefix + "NETWORK_LINK"),
        network_vlan=_optional_word(reader, prefix + "NETWORK_VLAN"),
    )
