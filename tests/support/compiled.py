"""Whether the tree's falproxy is compiled (scripts/compile), and whether that build is stale.

A compiled module shadows its ``.py`` file, so a source edited after the build would be
silently ignored by every test: the suite refuses to start on such a build instead.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def shared_library() -> Path | None:
    """The build's shared library (mypyc's runtime and every compiled module), if any."""
    found = sorted((ROOT / "falproxy").glob("compiled__mypyc.*.so"))
    return found[0] if found else None


def compiled_modules() -> list[Path]:
    """The compiled modules that shadow a ``.py`` file."""
    found = (ROOT / "falproxy").rglob("*.so")
    return sorted(p for p in found if not p.name.startswith("compiled__mypyc."))


def stale_build() -> str | None:
    """Why the compiled build cannot be trusted, or None (no build, or an up-to-date one)."""
    modules = compiled_modules()
    shared = shared_library()
    if not modules and shared is None:
        return None
    if shared is None or not modules:
        return "a partial compiled build: run ./scripts/compile (or ./scripts/compile --clean)"
    built = shared.stat().st_mtime
    sources = [ROOT / "setup.py", *(ROOT / "falproxy").rglob("*.py")]
    newer = [p for p in sources if p.stat().st_mtime > built]
    if newer:
        names = ", ".join(str(p.relative_to(ROOT)) for p in newer[:3])
        return (
            f"{names} changed after falproxy was compiled, and the compiled modules shadow "
            "the sources: run ./scripts/compile, or ./scripts/compile --clean for pure Python"
        )
    return None


def build_description() -> str:
    modules = compiled_modules()
    if not modules:
        return "falproxy: pure Python (./scripts/compile builds the compiled hot path)"
    return f"falproxy: {len(modules)} modules compiled with mypyc"
