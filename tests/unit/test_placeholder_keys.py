"""A placeholder key the project ships is a start-up error naming the file to edit (issue 19,
item 2): the compose env file or the example Secret copied unedited must not start a proxy
that sends the placeholder to fal.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from falproxy import ConfigError, FalCredential, ProxyConfig
from falproxy.core.keys import PLACEHOLDER_KEYS

REPO = Path(__file__).resolve().parents[2]
SHIPPED = [
    REPO / "README.md",
    REPO / "Dockerfile",
    *(REPO / d for d in ("docs", "deploy", "examples")),
]
# A FAL_KEY (or FAL_KEY_ID/FAL_KEY_SECRET) given a literal value in a shipped file.
KEY_VALUE = re.compile(
    r"\bFAL_KEY(?:_ID|_SECRET)?\s*[=:]\s*[\"']?([A-Za-z0-9][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+)?)"
)
# Literal keys shipped on purpose to be run as written, and why they are not placeholders.
RUNNABLE_KEYS = {
    "any-id:any-secret": "docs/getting-started.md: the fake fal accepts any key",
    "id:secret": "deploy/README.md: the image check needs a key to start and never calls fal",
}


def shipped_files() -> list[Path]:
    files = []
    for root in SHIPPED:
        paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        files.extend(p for p in paths if p.suffix not in {".png", ".ico", ".pyc"})
    return files


def shipped_key_values() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in shipped_files():
        for value in KEY_VALUE.findall(path.read_text(errors="replace")):
            found.setdefault(value, []).append(str(path.relative_to(REPO)))
    return found


def test_every_key_value_shipped_is_a_known_placeholder_or_runnable() -> None:
    found = shipped_key_values()
    assert found, "the scan found no FAL_KEY value at all: the pattern is wrong"
    unknown = {
        v: where for v, where in found.items() if v not in {*PLACEHOLDER_KEYS, *RUNNABLE_KEYS}
    }
    assert not unknown, f"add these to PLACEHOLDER_KEYS (core/keys.py) or RUNNABLE_KEYS: {unknown}"


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_KEYS))
def test_each_placeholder_is_still_shipped_where_its_message_says(placeholder: str) -> None:
    where = shipped_key_values().get(placeholder, [])
    assert where, f"{placeholder} is no longer shipped: drop it from PLACEHOLDER_KEYS"
    named = re.findall(r"\b(?:deploy|docs|examples)/[\w./-]+\w", PLACEHOLDER_KEYS[placeholder])
    assert any(path in where for path in named), (placeholder, where, named)


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_KEYS))
def test_a_placeholder_key_stops_start_up_naming_the_file_to_edit(placeholder: str) -> None:
    fix = PLACEHOLDER_KEYS[placeholder]
    with pytest.raises(ConfigError) as refused:
        ProxyConfig.from_env({"FAL_KEY": placeholder})
    assert str(refused.value) == f"FAL_KEY is the example's placeholder, not a key: {fix}"
    key_id, secret = placeholder.split(":")
    for env in (
        {"FAL_KEY_ID": key_id, "FAL_KEY_SECRET": "s"},
        {"FAL_KEY_ID": "i", "FAL_KEY_SECRET": secret},
    ):
        with pytest.raises(ConfigError, match="placeholder"):
            ProxyConfig.from_env(env)
    with pytest.raises(ConfigError, match="placeholder"):
        FalCredential(placeholder, source="falproxy.toml: fal_key")


@pytest.mark.parametrize("runnable", sorted(RUNNABLE_KEYS))
def test_keys_shipped_to_run_as_written_still_start(runnable: str) -> None:
    assert ProxyConfig.from_env({"FAL_KEY": runnable}).credential == FalCredential(runnable)
