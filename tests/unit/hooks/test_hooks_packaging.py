"""The package installs the hook exactly where Ganeti looks, for every reported path."""

import re

from unit_helpers import REPO

from ganeti_ext.hooks import notify

LINKS = REPO / "debian" / "snf-ganeti-eventd.links"
EXT_PLUGIN_MASK = re.compile(r"^[a-zA-Z0-9_-]+$")  # Ganeti's rule for hook file names


def links():
    lines = LINKS.read_text().splitlines()
    return [line.split() for line in lines if line.strip() and not line.startswith("#")]


def test_one_link_per_reported_hook_path():
    targets = [target for _, target in links()]
    expected = [f"etc/ganeti/hooks/{hpath}-post.d/50-snf-ganeti-ext" for hpath in notify.HPATHS]
    assert sorted(targets) == sorted(expected)


def test_links_point_at_the_installed_shim_with_a_name_ganeti_runs():
    installed = (REPO / "debian" / "snf-ganeti-eventd.install").read_text()
    assert "hooks/snf-ganeti-hook usr/lib/snf-ganeti-eventd/" in installed
    for source, target in links():
        assert source == "usr/lib/snf-ganeti-eventd/snf-ganeti-hook"
        assert EXT_PLUGIN_MASK.match(target.rsplit("/", 1)[1])


def test_shim_is_executable():
    assert (REPO / "hooks" / "snf-ganeti-hook").stat().st_mode & 0o111
