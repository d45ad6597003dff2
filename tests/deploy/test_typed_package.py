"""The installed wheel is a typed package (PEP 561): downstream mypy sees falproxy's types.

mypy runs from the development environment but resolves imports in the image's fresh
virtual environment (``--python-executable``), from a directory outside the repository,
so the only falproxy it can find is the installed wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.support.image_venv import ImageVenv

MYPY = Path(sys.executable).parent / "mypy"
DOWNSTREAM = """\
from falproxy import FalProxy, ProxyConfig, ProxyEvent
from falproxy.config.settings import DEFAULT_ROUTE


def build(key: str) -> FalProxy:
    return FalProxy(ProxyConfig.from_env({"FAL_KEY": key}))


def on_event(event: ProxyEvent) -> None:
    print(event)


route: str = build("id:secret").config.route
assert route == DEFAULT_ROUTE
"""
# Proves the annotations are read, not replaced by Any: this line must be an error.
WRONG = "count: int = ProxyConfig().route\n"


def mypy(module: Path, image: ImageVenv) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    command = [str(MYPY), "--strict", "--no-incremental", "--python-executable"]
    command += [str(image.python), "--config-file", os.devnull, module.name]
    return subprocess.run(
        command, cwd=module.parent, env=env, capture_output=True, text=True, timeout=300
    )


def test_downstream_module_type_checks_against_the_wheel(image: ImageVenv, tmp_path: Path) -> None:
    assert (image.site_packages() / "falproxy" / "py.typed").is_file()
    module = tmp_path / "downstream.py"
    module.write_text(DOWNSTREAM)
    result = mypy(module, image)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "py.typed" not in result.stdout


def test_downstream_type_errors_are_found(image: ImageVenv, tmp_path: Path) -> None:
    module = tmp_path / "downstream.py"
    module.write_text(DOWNSTREAM + WRONG)
    result = mypy(module, image)
    assert result.returncode == 1
    assert 'Incompatible types in assignment (expression has type "str"' in result.stdout
