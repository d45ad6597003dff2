"""FALPROXY_COMPILE at build time (setup.py): a machine with no C compiler still gets a
working install by default, pure Python, told so; the Dockerfile's ``1`` makes it an error.

Each case builds a wheel from a copy of the sources with ``pip wheel`` (build isolation,
as a user's ``pip install .``), with ``CC`` pointing at a compiler that does not exist.
The wheel the Dockerfile builds with a compiler is tests/support/image_venv.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.procs import REPO

NO_COMPILER = "/nonexistent/cc"
BUILD_TIMEOUT = 600


def _sources(tmp_path: Path) -> Path:
    tree = tmp_path / "src"
    tree.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, tree / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so")
    shutil.copytree(REPO / "falproxy", tree / "falproxy", ignore=ignore)
    return tree


def _wheel(tmp_path: Path, compile_mode: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "wheels"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"CC": NO_COMPILER, "FALPROXY_COMPILE": compile_mode}
    command = [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--wheel-dir", str(out)]
    result = subprocess.run(
        [*command, str(_sources(tmp_path))],
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
    )
    return result, out


def test_with_no_compiler_the_default_build_is_pure_python_and_says_so(tmp_path: Path) -> None:
    result, out = _wheel(tmp_path, "auto")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = out.glob("falproxy-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl"), wheel.name  # no extension inside
    assert "installing pure Python" in result.stdout + result.stderr


def test_with_no_compiler_compile_1_fails_the_build(tmp_path: Path) -> None:
    result, out = _wheel(tmp_path, "1")
    assert result.returncode != 0
    assert not list(out.glob("falproxy-*.whl"))
