"""Fixtures shared by the whole suite: the running lab for integration tests.

Unit tests (tests/unit) need none of this. Integration tests ask for `lab` (the lab as
it is, brought up once per session if needed) or `lab2` (at least two nodes).
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid

import pytest

from labkit.handle import Lab, ensure_up


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after every other test (it disturbs the lab)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def lab() -> Lab:
    if os.geteuid() != 0:
        pytest.skip("integration tests drive the lab, which needs root")
    if os.environ.get("GANETI_EXT_NO_LAB"):
        # The other release's root (labkit/otherrelease.py): only what needs no lab runs.
        pytest.skip("needs the lab, which runs the machine's own release")
    return ensure_up()


@pytest.fixture(scope="session")
def lab2(lab: Lab) -> Lab:
    return ensure_up(nodes=2)


@pytest.fixture(scope="session")
def xfs_mount():
    """A scratch XFS with reflinks for this test session (root only; no lab needed)."""
    if os.geteuid() != 0:
        pytest.skip("a scratch XFS needs root (loop devices, mount)")
    from labkit import xfs

    mountpoint = xfs.scratch("tests", "24G")
    yield mountpoint
    xfs.drop_scratch(mountpoint)


@pytest.fixture
def xfs_dir(xfs_mount, request):
    """An empty directory of its own on the scratch XFS, removed after the test."""
    directory = xfs_mount / f"{request.node.name[:60]}-{uuid.uuid4().hex[:6]}"
    directory.mkdir()
    yield directory
    from labkit import xfs

    xfs.detach_loops_under(directory)
    shutil.rmtree(directory, ignore_errors=True)


_counter = itertools.count(1)


@pytest.fixture
def instance_name(lab: Lab):
    """A fresh instance name (prefix `snf-`, as the cloud layer names them); removed after."""
    names: list[str] = []

    def make() -> str:
        name = f"snf-t{next(_counter)}{uuid.uuid4().hex[:4]}"
        names.append(name)
        return name

    yield make
    existing = {row["name"] for row in lab.instances()}
    for name in names:
        if name in existing:
            lab.gnt("gnt-instance", "remove", "-f", "--shutdown-timeout=0", name, check=False)
