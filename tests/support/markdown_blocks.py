"""Code blocks of the repository's Markdown files, for the documentation tests.

A fence is a line of three or more backticks (or tildes), indented or not, with an optional
info string; it closes at a line of the same character, at least as long, with nothing else.
A block is *runnable* when the line before its opening fence is ``<!-- runnable -->``: an
HTML comment, because MkDocs (superfences) and GitHub render it invisibly, whereas a second
word in the info string stops MkDocs from seeing a fence at all.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE_MARKER = "<!-- runnable -->"
# Folders that hold other projects' Markdown or build output, never ours.
SKIPPED_DIRS = frozenset(
    {".git", ".venv", "node_modules", "site", "build", "dist", ".pytest_cache", ".mypy_cache"}
)
_OPENING = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


class UnclosedFence(ValueError):
    """A fence opened and never closed, or closed by the next block's opener: text after it
    renders as code."""


@dataclass(frozen=True, slots=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    lang: str  # first word of the info string, lower-case; "" when none
    source: str  # the block's text, dedented by the fence's indent
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    """Every Markdown file of the repository (ours, not installed packages' or built pages)."""
    return sorted(
        path
        for path in ROOT.rglob("*.md")
        if not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts[:-1])
        and not any(part.endswith(".egg-info") for part in path.parts)
    )


def code_blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of one file; UnclosedFence if a fence is left open."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _OPENING.match(lines[index])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((i for i in range(index + 1, len(lines)) if closing.match(lines[i])), None)
        if end is None:
            raise UnclosedFence(f"{path.relative_to(ROOT)}:{index + 1}: fence never closed")
        for inner in range(index + 1, end):
            # A same-length fence with a language inside a block is the next block's opener:
            # the block before it lost its closing fence, and the pairs are shifted.
            nested = _OPENING.match(lines[inner])
            if nested and nested["fence"] == fence and nested["info"].strip():
                raise UnclosedFence(
                    f"{path.relative_to(ROOT)}:{inner + 1}: a block opens inside the block of"
                    f" line {index + 1}; a closing fence is missing or misplaced"
                )
        body = "\n".join(_unindent(line, indent) for line in lines[index + 1 : end])
        previous = lines[index - 1].strip() if index else ""
        info = opening["info"].strip()
        yield Block(
            path=path,
            line=index + 1,
            lang=info.split()[0].lower() if info else "",
            source=textwrap.dedent(body) + "\n",
            runnable=previous == RUNNABLE_MARKER,
        )
        index = end + 1


def _unindent(line: str, indent: int) -> str:
    """Remove the fence's own indent (a block inside a list item) from one content line."""
    return line[indent:] if not line[:indent].strip() else line.lstrip()


def doc_blocks() -> list[Block]:
    """Blocks of README.md and docs/, the pages a user reads and copies from."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [block for path in paths for block in code_blocks(path)]
