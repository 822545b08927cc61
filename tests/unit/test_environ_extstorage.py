import pytest
from unit_helpers import env_fixture, env_with

from ganeti_ext.environ import extstorage
from ganeti_ext.errors import EnvError

VOL = "3f1c2b7e-9d4a-4b8e-a1f0-6c2d9e8b7a51.ext.disk0"


def test_create():
    request = extstorage.parse("create", env_fixture("es-create"))
    assert request.name == VOL and request.size_mib == 1024
    assert request.uuid == "0b6f1c1e-5f5e-4a7e-9a4b-2f0b1e2c3d4e"
    assert request.provider == "archipelago" and request.access == "kernelspace"
    assert dict(request.params) == {}  # provider/access are Ganeti's, not --disk params


def test_create_with_parameters_and_name():
    request = extstorage.parse("create", env_fixture("es-create-origin"))
    assert dict(request.params) == {"origin": "debian-12-base"}
    assert request.cname == "root"


def test_grow():
    request = extstorage.parse("grow", env_fixture("es-grow"))
    assert (request.size_mib, request.new_size_mib) == (1024, 2048)


def test_setinfo_open_snapshot():
    assert extstorage.parse("setinfo", env_fixture("es-setinfo")).metadata == (
        "originstname+snf-42"
    )
    assert extstorage.parse("open", env_fixture("es-open")).open_exclusive is True
    shared = env_fixture("es-open") | {"VOL_OPEN_EXCLUSIVE": "False"}
    assert extstorage.parse("open", shared).open_exclusive is False
    snapshot = extstorage.parse("snapshot", env_fixture("es-snapshot"))
    assert snapshot.snapshot_name == VOL + ".snap" and snapshot.snapshot_size_mib == 1024


def test_verify_needs_no_volume():
    assert extstorage.parse("verify", {"EXTP_ORIGIN": "img"}).name is None


@pytest.mark.parametrize(
    "verb, fixture, changes, variable",
    [
        pytest.param("attach", "es-attach", {"VOL_NAME": None}, "VOL_NAME", id="no-name"),
        pytest.param(
            "attach", "es-attach", {"VOL_NAME": "../../etc/passwd"}, "VOL_NAME", id="dotdot"
        ),
        pytest.param("attach", "es-attach", {"VOL_NAME": "a/b"}, "VOL_NAME", id="slash"),
        pytest.param("attach", "es-attach", {"VOL_NAME": ".hidden"}, "VOL_NAME", id="leading-dot"),
        pytest.param("create", "es-create", {"VOL_SIZE": None}, "VOL_SIZE", id="create-no-size"),
        pytest.param("create", "es-create", {"VOL_SIZE": "1G"}, "VOL_SIZE", id="create-size-unit"),
        pytest.param("create", "es-create", {"VOL_SIZE": "0"}, "VOL_SIZE", id="create-size-zero"),
        pytest.param("grow", "es-grow", {"VOL_NEW_SIZE": None}, "VOL_NEW_SIZE", id="grow-no-size"),
        pytest.param("setinfo", "es-setinfo", {"VOL_METADATA": None}, "VOL_METADATA", id="setinfo"),
        pytest.param(
            "snapshot",
            "es-snapshot",
            {"VOL_SNAPSHOT_NAME": None},
            "VOL_SNAPSHOT_NAME",
            id="snapshot-no-name",
        ),
        pytest.param(
            "snapshot",
            "es-snapshot",
            {"VOL_SNAPSHOT_NAME": "x/../y"},
            "VOL_SNAPSHOT_NAME",
            id="snapshot-name",
        ),
        pytest.param(
            "open", "es-open", {"VOL_OPEN_EXCLUSIVE": "maybe"}, "VOL_OPEN_EXCLUSIVE", id="exclusive"
        ),
        pytest.param("attach", "es-attach", {"EXTP_ACCESS": "both"}, "EXTP_ACCESS", id="access"),
    ],
)
def test_bad_environment_names_the_variable(verb, fixture, changes, variable):
    env = env_with(fixture, **changes)
    with pytest.raises(EnvError) as failure:
        extstorage.parse(verb, env)
    assert failure.value.variable == variable
