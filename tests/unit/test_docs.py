"""The documentation renders and its code is real.

Every Markdown file of the repository closes the fences it opens (an odd one turns the rest
of the page into code); every Python block of README.md and docs/ compiles, every TOML block
parses; the settings reference is what scripts/gen_config_reference.py writes today; the
README's short path names the commands that exist. Runnable blocks are executed against the
fake fal by tests/live/test_docs_runnable.py.
"""

from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.markdown_blocks import (
    ROOT,
    RUNNABLE_MARKER,
    Block,
    UnclosedFence,
    code_blocks,
    doc_blocks,
    markdown_files,
)


def _blocks() -> list[Block]:
    """README and docs blocks; a broken page is reported by test_every_fence_is_closed."""
    try:
        return doc_blocks()
    except UnclosedFence:
        return []


BLOCKS = _blocks()
PYTHON = [block for block in BLOCKS if block.lang in ("python", "py")]
TOML = [block for block in BLOCKS if block.lang == "toml"]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", ROOT / "scripts" / "gen_config_reference.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_fence_is_closed(path: Path) -> None:
    list(code_blocks(path))


def test_an_unclosed_fence_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.support.markdown_blocks.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("# t\n\n```sh\nok\n```\n\n```python\nx = 1\n\n## Next\n")
    with pytest.raises(UnclosedFence, match=r"page.md:7"):
        list(code_blocks(page))


def test_a_stray_fence_that_shifts_the_pairs_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tests.support.markdown_blocks.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text("text\n```\n\n## Performance\n\n```sh\nrun\n```\n")
    with pytest.raises(UnclosedFence, match=r"page.md:6: a block opens inside"):
        list(code_blocks(page))


def test_the_runnable_marker_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tests.support.markdown_blocks.ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text(f"{RUNNABLE_MARKER}\n```python\nx = 1\n```\n\n```python\ny = 2\n```\n")
    assert [(b.line, b.runnable) for b in code_blocks(page)] == [(2, True), (6, False)]


@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.where)
def test_python_blocks_compile(block: Block) -> None:
    compile(block.source, block.where, "exec")


@pytest.mark.parametrize("block", TOML, ids=lambda b: b.where)
def test_toml_blocks_parse(block: Block) -> None:
    tomllib.loads(block.source)


def test_every_runnable_block_is_python() -> None:
    assert all(block.lang == "python" for block in BLOCKS if block.runnable)
    assert any(block.runnable for block in BLOCKS), "no runnable block: the marker was lost"


def test_the_settings_reference_is_up_to_date() -> None:
    generator = _generator()
    expected = generator.render(generator.read_settings())
    committed = (ROOT / "docs" / "reference" / "settings.md").read_text()
    assert committed == expected, "run: python scripts/gen_config_reference.py"


def test_the_settings_reference_names_every_setting() -> None:
    generator = _generator()
    text = (ROOT / "docs" / "reference" / "settings.md").read_text()
    for setting in generator.read_settings():
        assert f"`{setting.variable or setting.field}`" in text or setting.field == "credential"


def test_a_setting_without_a_meaning_stops_the_generator() -> None:
    generator = _generator()
    rows = [*generator.read_settings(), generator.Setting("brand_new", "FALPROXY_NEW", None)]
    with pytest.raises(ValueError, match="brand_new"):
        generator.render(rows)


def test_readme_gives_the_short_path() -> None:
    readme = (ROOT / "README.md").read_text()
    for line in (
        "pip install .",
        "falproxy serve --fake=auto",
        'fal.config({ proxyUrl: "/api/fal/proxy" })',
        "./scripts/test",
    ):
        assert line in readme, line
