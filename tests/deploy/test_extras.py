"""Honest dependencies: the base install holds what runtime code imports, features come
with extras, and a missing extra is one line naming the ``pip install`` to run.

The checks run against the wheel installed alone in a fresh virtual environment (no
extras), which is what ``pip install falproxy`` gives a new user.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY
from tests.support.image_venv import ImageVenv
from tests.support.procs import REPO

PACKAGE = REPO / "falproxy"
# Base dependencies no falproxy module imports, and why each is still needed.
USED_WITHOUT_IMPORT = {
    "httptools": "the parser of uvicorn's protocol that standalone/protocols.py subclasses",
    "uvloop": "uvicorn's event loop under falproxy serve (picked when installed)",
    "sniffio": "imported by httpx's pool on every call (pyproject.toml says why)",
}
# Modules runtime code imports only when present, each from an extra: module -> extra.
# ops/tracing.py: a no-op without the extra; admission/request_store.py: Redis only when
# FALPROXY_REDIS_URL is set (config validation names the extra when it is missing).
OPTIONAL_IMPORTS = {"opentelemetry": "otel", "redis": "redis"}
# Modules only the integrations import, each from its framework's extra.
INTEGRATION_EXTRAS = {"fastapi": "fastapi", "django": "django", "flask": "flask"}
NOT_IN_BASE = ("slowapi", "watchfiles", "python-dotenv", "pyyaml", "cryptography", "redis")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def project() -> dict[str, object]:
    loaded: dict[str, object] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return loaded


def imported_distributions(files: list[Path], *, skip: frozenset[str] = frozenset()) -> set[str]:
    """Third-party distributions whose modules ``files`` import (absolute imports)."""
    modules = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules.add(node.module.split(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"falproxy", "__future__"} - skip
    owners = packages_distributions()
    return {_name(dist) for module in third_party for dist in owners.get(module, [module])}


def test_base_dependencies_are_what_runtime_code_imports() -> None:
    integrations = sorted((PACKAGE / "integrations").glob("*.py"))
    core = [p for p in sorted(PACKAGE.rglob("*.py")) if p not in integrations]
    declared = {_name(requirement) for requirement in project()["dependencies"]}  # type: ignore[attr-defined]
    optional = frozenset(OPTIONAL_IMPORTS)
    assert declared == imported_distributions(core, skip=optional) | set(USED_WITHOUT_IMPORT)
    extras: dict[str, list[str]] = project()["optional-dependencies"]  # type: ignore[assignment]
    for module, extra in OPTIONAL_IMPORTS.items():
        assert any(_name(r).startswith(module) for r in extras[extra]), (module, extra)


def test_each_integration_imports_only_its_extra() -> None:
    extras: dict[str, list[str]] = project()["optional-dependencies"]  # type: ignore[assignment]
    declared = {_name(requirement) for requirement in project()["dependencies"]}  # type: ignore[attr-defined]
    for module, extra in INTEGRATION_EXTRAS.items():
        needed = imported_distributions([PACKAGE / "integrations" / f"{module}.py"]) - declared
        provided = {_name(requirement) for requirement in extras[extra]}
        # asgiref comes with Django (it is Django's own dependency).
        assert needed - provided <= {"asgiref"}, (module, needed, provided)


def pip_list(install: ImageVenv) -> set[str]:
    listed = subprocess.run(
        [str(install.python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        env=install.env(dict(os.environ)),
    )
    return {_name(line) for line in listed.stdout.splitlines()}


def test_plain_install_holds_no_unused_package(plain_install: ImageVenv) -> None:
    installed = pip_list(plain_install)
    assert not installed & set(NOT_IN_BASE), installed & set(NOT_IN_BASE)
    assert {"uvicorn", "httptools", "uvloop", "websockets", "pyjwt"} <= installed


def run(install: ImageVenv, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    return subprocess.run(
        args,
        env=install.env({**base, "FAL_KEY": TEST_KEY, **env}),
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "extra"),
    [
        ("FALPROXY_REDIS_URL", "redis://127.0.0.1:6379/0", "redis"),
        ("FALPROXY_JWKS_URL", "https://idp.example.com/.well-known/jwks.json", "jwks"),
    ],
)
def test_a_setting_whose_extra_is_missing_is_one_line(
    plain_install: ImageVenv, variable: str, value: str, extra: str
) -> None:
    result = run(
        plain_install, str(plain_install.falproxy), "serve", "--port", "0", **{variable: value}
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        lines[0].startswith("falproxy: error: ") and f"pip install 'falproxy[{extra}]'" in lines[0]
    )


@pytest.mark.parametrize("framework", sorted(INTEGRATION_EXTRAS))
def test_an_integration_without_its_framework_names_the_extra(
    plain_install: ImageVenv, framework: str
) -> None:
    module = f"falproxy.integrations.{framework}"
    result = run(plain_install, str(plain_install.python), "-c", f"import {module}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"ModuleNotFoundError: {module} needs the "), result.stderr
    assert last.endswith(f"pip install 'falproxy[{INTEGRATION_EXTRAS[framework]}]'")
    assert "During handling" not in result.stderr, "one error, not a chain"
