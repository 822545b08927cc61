import pytest

from ganeti_ext import node


def test_canonical_name_of_localhost():
    assert node.canonical_name("localhost") in ("localhost", "localhost.localdomain")


def test_names_compare_like_ganeti_and_a_short_name_matches_its_fqdn():
    assert node.same_node("node1.ganeti.test", "NODE1.ganeti.test.")
    assert node.same_node("node1", "node1.ganeti.test")
    assert not node.same_node("node2.ganeti.test", "node1.ganeti.test")
    assert not node.same_node("node1.ganeti.test", None)


def test_master_name_from_ssconf(tmp_path):
    (tmp_path / "ssconf_master_node").write_text("node1.ganeti.test\n")
    assert node.master_name(tmp_path) == "node1.ganeti.test"


@pytest.mark.parametrize("content", [None, "", "\n"], ids=["missing", "empty", "blank"])
def test_no_master_name(tmp_path, content):
    if content is not None:
        (tmp_path / "ssconf_master_node").write_text(content)
    assert node.master_name(tmp_path) is None


@pytest.mark.parametrize(
    "me, ssconf, fallback, expected",
    [
        pytest.param("node1.ganeti.test", "node1.ganeti.test", None, True, id="master"),
        pytest.param("node2.ganeti.test", "node1.ganeti.test", None, False, id="other-node"),
        pytest.param(
            "node2.ganeti.test",
            "node1.ganeti.test",
            "node2.ganeti.test",
            False,
            id="ssconf-wins-over-env",
        ),
        pytest.param("node1.ganeti.test", None, "NODE1.ganeti.test", True, id="env-fallback"),
        pytest.param("node1.ganeti.test", None, None, False, id="nothing-known"),
    ],
)
def test_is_master(me, ssconf, fallback, expected):
    assert node.is_master(me, ssconf, fallback) is expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/usr/share/ganeti/3.1", (3, 1)), ("/usr/share/ganeti/3.0/", (3, 0)), ("/x/default", None)],
)
def test_ganeti_version_is_where_the_share_link_points(tmp_path, target, expected):
    link = tmp_path / "share"
    link.symlink_to(target)
    assert node.ganeti_version(link) == expected


def test_no_share_link_is_an_unknown_version(tmp_path):
    assert node.ganeti_version(tmp_path / "share") is None
