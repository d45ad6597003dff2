"""The README's short path holds on a fresh machine (issue 19, item 7): a virtual environment
before ``pip install`` (PEP 668), gunicorn named with ``[frameworks]``, and the truth about
what ``./scripts/test`` installs with apt-get.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.markdown_blocks import code_blocks

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_the_first_install_is_inside_a_virtual_environment() -> None:
    first = next(b for b in code_blocks(README) if "pip install" in b.source)
    lines = first.source.splitlines()
    venv = next(i for i, line in enumerate(lines) if "python3 -m venv" in line)
    assert venv < next(i for i, line in enumerate(lines) if "pip install" in line)
    assert "PEP 668" in README.read_text()


def test_gunicorn_is_named_with_the_frameworks_extra() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^frameworks = \[(.*?)^\]", pyproject, re.S | re.M)
    assert extra is not None and "gunicorn" in extra.group(1)
    assert re.search(r"'\.\[frameworks\]'[^.]*gunicorn", README.read_text())


def test_every_package_scripts_test_installs_is_named_with_root() -> None:
    script = (ROOT / "scripts" / "test").read_text()
    pairs = re.search(r"for pair in ([^;]+);", script)
    assert pairs is not None and "apt-get install" in script
    packages = [pair.split(":")[1] for pair in pairs.group(1).split()]
    tests_section = README.read_text().split("## Tests", 1)[1].split("\n## ", 1)[0]
    for package in packages:
        assert f"`{package}`" in tests_section or f" {package}" in tests_section, package
    assert "root" in tests_section and "apt-get" in tests_section
