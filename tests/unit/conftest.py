"""Fixtures for the unit tests (helpers live in unit_helpers.py)."""

from __future__ import annotations

import pytest
from unit_helpers import FakeLosetup


@pytest.fixture
def fake_losetup() -> FakeLosetup:
    return FakeLosetup()


@pytest.fixture
def clean_logging():
    """Undo setup_logging after the test, so handlers do not leak between tests."""
    import logging

    from ganeti_ext import logsetup

    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(logsetup._installed):
        root.removeHandler(handler)
        handler.close()
    logsetup._installed.clear()
    root.setLevel(level)
