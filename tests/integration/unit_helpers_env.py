"""Captured ExtStorage environments (tests/data/env) with changes, for verb scripts."""

from __future__ import annotations

from archipelago_helpers import REPO

from ganeti_ext.environ.reader import read_env_file


def es_env(verb: str, **changes: str) -> dict[str, str]:
    env = read_env_file((REPO / "tests" / "data" / "env" / f"es-{verb}.env").read_text())
    env.update(changes)
    return env
