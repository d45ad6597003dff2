"""Every ``FALPROXY_*`` name the README, docs/ and deploy/ mention is one falproxy reads
(issue 19, item 9): a renamed or imagined setting in the docs is caught here, not by a
user whose variable is refused at start-up. And no doc calls a setting "not yet acted on".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from falproxy.config.loader import INTERNAL_VARIABLES
from tests.support.settings_table import falproxy_variables

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bFALPROXY_[A-Z0-9_]*[A-Z0-9]\b")
# Variables the code reads that are not settings, and why the docs may name them.
INTERNAL = {
    "FALPROXY_CONFIG": "the config file `falproxy serve --config` passes to its workers",
    "FALPROXY_FAKE_BASE": "where `falproxy serve --fake` tells its workers the fake is served",
    "FALPROXY_FAKE_SPEED": "the fake's speed `falproxy serve --fake-speed` passes to its workers",
    "FALPROXY_COMPILE": "read by setup.py when the package is built: compile the hot path or not",
}
# Names that are wrong on purpose, and where and why.
MISSPELT_ON_PURPOSE = {
    "FALPROXY_BODY_TIMOUT": "docs/configuration.md shows the did-you-mean answer to this typo",
}


def documents() -> list[Path]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    paths += sorted(p for p in (ROOT / "deploy").rglob("*") if p.is_file())
    return paths


def mentioned() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in documents():
        for name in NAME.findall(path.read_text(errors="replace")):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_documented_falproxy_variable_exists() -> None:
    known = falproxy_variables() | set(INTERNAL) | set(MISSPELT_ON_PURPOSE)
    unknown = {name: sorted(set(where)) for name, where in mentioned().items() if name not in known}
    assert not unknown, f"documented but read by nothing: {unknown}"


@pytest.mark.parametrize("name", sorted(INTERNAL))
def test_each_internal_variable_is_really_read(name: str) -> None:
    assert name in INTERNAL_VARIABLES, f"{name}: the loader would refuse it as unknown"
    sources = "".join(p.read_text() for p in (ROOT / "falproxy").rglob("*.py"))
    sources += (ROOT / "setup.py").read_text()
    assert f'"{name}"' in sources


@pytest.mark.parametrize("name", sorted(MISSPELT_ON_PURPOSE))
def test_a_typo_on_purpose_is_still_a_typo(name: str) -> None:
    assert name not in falproxy_variables() and name in mentioned()


def test_no_doc_calls_a_setting_unimplemented() -> None:
    for path in documents():
        text = " ".join(path.read_text(errors="replace").split())
        assert "not yet acted on" not in text, path
