"""The build sees what an install runs with: mypyc type-checks the compiled modules
against their imports, so pyproject's build requirements carry every runtime dependency."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _names(requirements: list[str]) -> dict[str, str]:
    return {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower(): r for r in requirements}


def test_the_build_requires_every_runtime_dependency_as_pinned() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = _names(pyproject["project"]["dependencies"])
    build = _names(pyproject["build-system"]["requires"])
    assert {name: build.get(name) for name in runtime} == runtime
    assert "mypy" in build and "setuptools" in build
