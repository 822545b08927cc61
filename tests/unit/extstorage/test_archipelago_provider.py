"""The verbs' decisions (idempotency, origins, sizes, opens) over an in-memory backend.

The file store itself is tested on a real XFS in tests/integration; here only what the
provider decides before it calls a backend.
"""

from contextlib import nullcontext
from dataclasses import replace

import pytest
from unit_helpers import env_fixture

from ganeti_ext.environ import extstorage as environ
from ganeti_ext.errors import EnvError, ValidationError
from ganeti_ext.extstorage.backend import (
    Attachment,
    OpenConflict,
    Origin,
    Volume,
    VolumeSpec,
    opened,
)
from ganeti_ext.extstorage.provider import ArchipelagoProvider

MIB = 1 << 20
VOL = "3f1c2b7e-9d4a-4b8e-a1f0-6c2d9e8b7a51.ext.disk0"


class MemoryBackend:
    def __init__(self) -> None:
        self.volumes: dict[str, Volume] = {}
        self.origins: dict[str, Origin] = {
            "debian-12": Origin("debian-12", "image", 700 * MIB, True)
        }
        self.attached: set[str] = set()
        self.calls: list[str] = []

    def check(self):
        pass

    def lock(self, name):
        return nullcontext()

    def volume(self, name):
        return self.volumes.get(name)

    def origin(self, name):
        return self.origins.get(name)

    def create(self, spec: VolumeSpec):
        self.calls.append(f"create {spec.name}")
        self.volumes[spec.name] = Volume(
            spec.name, spec.size, spec.origin, spec.uuid, spec.cname, None
        )

    def remove(self, name):
        self.calls.append(f"remove {name}")
        return self.volumes.pop(name, None) is not None or self.origins.pop(name, None) is not None

    def grow(self, name, size):
        self.volumes[name] = replace(self.volumes[name], size=size)

    def snapshot(self, volume, snapshot):
        self.origins[snapshot] = Origin(snapshot, "snapshot", self.volumes[volume].size, False)

    def attach(self, name):
        self.attached.add(name)
        return Attachment("/dev/loop7", uri="/store/volumes/v/data")

    def detach(self, name):
        self.attached.discard(name)

    def set_metadata(self, name, metadata):
        self.volumes[name] = replace(self.volumes[name], metadata=metadata)

    def set_open(self, name, node, exclusive):
        volume = self.volumes[name]
        self.volumes[name] = replace(volume, opens=opened(volume.opens, node, exclusive))

    def clear_open(self, name, node):
        volume = self.volumes[name]
        self.volumes[name] = replace(
            volume, opens={n: e for n, e in volume.opens.items() if n != node}
        )


@pytest.fixture
def backend():
    return MemoryBackend()


def verb(backend, name, node="node1.example", ganeti=None, **changes):
    env = env_fixture("es-attach" if name == "verify" else f"es-{name}")
    env.update(changes)
    env = {key: value for key, value in env.items() if value is not None}
    return ArchipelagoProvider(backend, node, ganeti).run(environ.parse(name, env))


def test_a_userspace_disk_is_refused_before_anything_is_made_on_ganeti_3_1(backend):
    with pytest.raises(ValidationError, match=r"EXTP_ACCESS=userspace needs Ganeti 3.0"):
        verb(backend, "create", ganeti=(3, 1), EXTP_ACCESS="userspace")
    assert backend.volumes == {}
    verb(backend, "create", ganeti=(3, 1), EXTP_ACCESS="kernelspace")
    assert VOL in backend.volumes


@pytest.mark.parametrize("ganeti", [(3, 0), None])
def test_a_userspace_disk_is_made_where_ganeti_takes_a_file_or_its_version_is_unknown(
    backend, ganeti
):
    verb(backend, "create", ganeti=ganeti, EXTP_ACCESS="userspace")
    assert VOL in backend.volumes


def test_create_from_an_origin_then_again_is_idempotent(backend):
    verb(backend, "create", EXTP_ORIGIN="debian-12")
    verb(backend, "create", EXTP_ORIGIN="debian-12")
    assert backend.calls == [f"create {VOL}"]
    assert backend.volumes[VOL].origin == "debian-12" and backend.volumes[VOL].size == 1024 * MIB


def test_create_again_with_other_size_or_origin_is_refused(backend):
    verb(backend, "create")
    with pytest.raises(ValidationError, match=r"already exists with 1024 MiB from nothing"):
        verb(backend, "create", VOL_SIZE="2048")
    with pytest.raises(ValidationError, match=r"not 1024 MiB from debian-12"):
        verb(backend, "create", EXTP_ORIGIN="debian-12")


def test_an_origin_bigger_than_the_disk_is_refused_by_name(backend):
    with pytest.raises(ValidationError, match=r"origin debian-12 holds 700 MiB, more than the 512"):
        verb(backend, "create", EXTP_ORIGIN="debian-12", VOL_SIZE="512")
    assert backend.volumes == {}


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("ubuntu", "no image or snapshot named ubuntu"),
        ("../etc", "origin name '../etc'"),
        ("a/b", "origin name 'a/b'"),
        ("bell\x07", "origin name 'bell"),
    ],
)
def test_bad_origins_are_named(backend, origin, message):
    with pytest.raises(ValidationError, match=message):
        verb(backend, "create", EXTP_ORIGIN=origin)
    with pytest.raises(ValidationError, match=message):
        verb(backend, "verify", EXTP_ORIGIN=origin)


def test_origin_size_from_synnefo_is_checked(backend):
    verb(backend, "create", EXTP_ORIGIN="debian-12", EXTP_ORIGIN_SIZE="700")
    with pytest.raises(ValidationError, match=r"EXTP_ORIGIN_SIZE: 10 MiB, but origin debian-12"):
        verb(backend, "verify", EXTP_ORIGIN="debian-12", EXTP_ORIGIN_SIZE="10")
    with pytest.raises(ValidationError, match=r"EXTP_ORIGIN_SIZE: must be a size in MiB"):
        verb(backend, "verify", EXTP_ORIGIN_SIZE="big")


def test_unknown_parameters_are_refused_on_every_verb(backend):
    for name in ("create", "verify", "attach"):
        with pytest.raises(ValidationError, match=r"^EXTP_COLOUR: unknown parameter 'colour'"):
            verb(backend, name, EXTP_COLOUR="blue")


def test_a_name_taken_by_an_image_cannot_become_a_volume(backend):
    with pytest.raises(ValidationError, match="an image or snapshot has that name"):
        verb(backend, "create", VOL_NAME="debian-12")


@pytest.mark.parametrize("name", ["../x", "a/b", "x\n", ".."])
def test_hostile_volume_names_never_reach_the_backend(backend, name):
    with pytest.raises(EnvError, match=r"^VOL_NAME"):
        verb(backend, "create", VOL_NAME=name)
    assert backend.calls == []


def test_attach_prints_the_device_then_the_uri_for_qemu(backend):
    verb(backend, "create")
    assert verb(backend, "attach") == "/dev/loop7\nkvm:/store/volumes/v/data\n"
    assert verb(backend, "attach", EXTP_ACCESS="userspace").endswith("kvm:/store/volumes/v/data\n")


def test_remove_detaches_first_and_is_idempotent(backend):
    verb(backend, "create")
    verb(backend, "attach")
    verb(backend, "remove")
    verb(backend, "remove")
    assert VOL not in backend.attached and backend.volumes == {}


def test_grow_reads_vol_new_size_and_refuses_to_shrink(backend):
    verb(backend, "create")
    verb(backend, "grow", VOL_SIZE="1024", VOL_NEW_SIZE="2048")
    assert backend.volumes[VOL].size == 2048 * MIB
    verb(backend, "grow", VOL_SIZE="1024", VOL_NEW_SIZE="2048")  # a retry
    with pytest.raises(ValidationError, match=r"VOL_NEW_SIZE: .* has 2048 MiB; shrinking to 64"):
        verb(backend, "grow", VOL_NEW_SIZE="64")


def test_snapshot_needs_a_free_name(backend):
    verb(backend, "create")
    verb(backend, "snapshot", VOL_SNAPSHOT_NAME="s1")
    assert backend.origins["s1"].kind == "snapshot"
    with pytest.raises(ValidationError, match="VOL_SNAPSHOT_NAME: s1 already exists"):
        verb(backend, "snapshot", VOL_SNAPSHOT_NAME="s1")
    with pytest.raises(ValidationError, match="VOL_SNAPSHOT_NAME: debian-12 already exists"):
        verb(backend, "snapshot", VOL_SNAPSHOT_NAME="debian-12")


def test_open_and_close_follow_ganetis_migration_sequence(backend):
    verb(backend, "create")
    verb(backend, "open", node="n1")  # exclusive after create
    verb(backend, "open", node="n1")  # every activation reopens
    verb(backend, "open", node="n1", VOL_OPEN_EXCLUSIVE="False")  # migration: shared on both
    verb(backend, "open", node="n2", VOL_OPEN_EXCLUSIVE="False")
    verb(backend, "close", node="n1")
    verb(backend, "open", node="n2")  # exclusive on the new primary
    assert backend.volumes[VOL].opens == {"n2": True}
    with pytest.raises(OpenConflict):
        verb(backend, "open", node="n1")


def test_the_open_rule():
    assert opened({}, "a", True) == {"a": True}
    assert opened({"a": False}, "b", False) == {"a": False, "b": False}
    assert opened({"a": True}, "a", False) == {"a": False}
    for opens, node, exclusive in (
        ({"a": True}, "b", False),
        ({"a": True}, "b", True),
        ({"a": False}, "b", True),
    ):
        with pytest.raises(OpenConflict) as conflict:
            opened(opens, node, exclusive)
        assert conflict.value.holders == ["a"]
