"""Every helper, and every README snippet, fails in one line without a key (issue 19, item 7).

``mount``, ``fal_proxy_router``, ``fal_proxy_asgi``, ``fal_proxy_urls``,
``register_fal_proxy``, ``FalProxy()`` and ``SyncFalProxy()`` read the environment like
``ProxyConfig.load()``: a missing key or a wrong setting prints ``falproxy serve``'s one line
and exits 4 (gunicorn then stops instead of restarting workers), never a traceback. The
README's Python snippets are run as written, under the servers the docs name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from falproxy.config.loader import APP_LOAD_ERROR
from falproxy.config.settings import NO_KEY_MESSAGE
from falproxy.core.keys import PLACEHOLDER_KEYS
from tests.support.examples_server import ROOT
from tests.support.markdown_blocks import code_blocks
from tests.support.ports import free_port
from tests.support.procs import FALPROXY

NO_KEY_LINE = f"falproxy: error: {NO_KEY_MESSAGE}"
WRONG_ENDPOINT_LINE = (
    "falproxy: error: FALPROXY_ALLOWED_ENDPOINTS entry 'flux' can never match an app id "
    "[ns/]owner/alias[/...]; did you mean '*/flux/**'?"
)
DJANGO_SETTINGS = "examples.django_project.settings"
HELPERS = {
    "mount": "from fastapi import FastAPI\n"
    "from falproxy.integrations.fastapi import mount\nmount(FastAPI())",
    "fal_proxy_router": "from falproxy.integrations.fastapi import fal_proxy_router\n"
    "fal_proxy_router()",
    "fal_proxy_asgi": "from falproxy.integrations.django import fal_proxy_asgi\n"
    "fal_proxy_asgi(lambda scope, receive, send: None)",
    "fal_proxy_urls": "from falproxy.integrations.django import fal_proxy_urls\nfal_proxy_urls()",
    "register_fal_proxy": "from flask import Flask\n"
    "from falproxy.integrations.flask import register_fal_proxy\n"
    "register_fal_proxy(Flask('app'))",
    "FalProxy": "from falproxy import FalProxy\nFalProxy()",
    "SyncFalProxy": "from falproxy.wsgi.proxy import SyncFalProxy\nSyncFalProxy()",
}


def user_env(**variables: str) -> dict[str, str]:
    """A shell with no fal or falproxy variable but ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": DJANGO_SETTINGS, **variables}


def assert_one_line(completed: subprocess.CompletedProcess[str], line: str) -> None:
    assert completed.returncode == APP_LOAD_ERROR, completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    ours = [text for text in completed.stderr.splitlines() if text.startswith("falproxy:")]
    assert ours == [line], completed.stderr


@pytest.mark.parametrize("helper", sorted(HELPERS))
@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({}, NO_KEY_LINE),
        ({"FAL_KEY": "id:secret", "FALPROXY_ALLOWED_ENDPOINTS": "flux"}, WRONG_ENDPOINT_LINE),
    ],
    ids=["no-key", "wrong-setting"],
)
def test_each_helper_fails_in_one_line(helper: str, env: dict[str, str], line: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", HELPERS[helper]],
        env=user_env(**env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(completed, line)
    assert completed.stderr.strip() == line  # nothing else at all, in-process


def readme_snippet(marker: str) -> str:
    """The README's Python block that contains ``marker``."""
    blocks = [
        b for b in code_blocks(ROOT / "README.md") if b.lang == "python" and marker in b.source
    ]
    assert len(blocks) == 1, marker
    return blocks[0].source


# README snippet (found by a line it holds), the variable it leaves the app in, the servers.
SNIPPETS = [
    ("mount(app)", ["uvicorn", "snippet:app"]),
    ("fal_proxy_asgi(get_asgi_application())", ["uvicorn", "snippet:application"]),
    ("register_fal_proxy(app)", ["gunicorn", "snippet:app"]),
    ("register_fal_proxy(app)", ["flask", "--app", "snippet", "run"]),
]


@pytest.mark.parametrize(
    ("marker", "server"), SNIPPETS, ids=lambda v: v if isinstance(v, str) else v[0]
)
def test_each_readme_snippet_started_without_a_key_prints_one_line(
    marker: str, server: list[str], tmp_path: Path
) -> None:
    (tmp_path / "snippet.py").write_text(readme_snippet(marker))
    port = str(free_port())
    bind = ["--bind", f"127.0.0.1:{port}"] if server[0] == "gunicorn" else ["--port", port]
    if server[0] == "uvicorn":
        bind = ["--host", "127.0.0.1", *bind]
    if server[0] == "flask":
        bind = ["--host", "127.0.0.1", *bind]
    env = user_env(PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    completed = subprocess.run(
        [sys.executable, "-m", *server, *bind],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line(completed, NO_KEY_LINE)


@pytest.mark.parametrize("placeholder", sorted(PLACEHOLDER_KEYS))
@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["check"]])
def test_a_shipped_placeholder_key_is_one_line_naming_the_file(
    placeholder: str, command: list[str]
) -> None:
    """Issue 19, item 2: the example env file or Secret applied unedited does not start."""
    completed = subprocess.run(
        [FALPROXY, *command],
        env=user_env(FAL_KEY=placeholder),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    line = "falproxy: error: FAL_KEY is the example's placeholder, not a key: "
    assert completed.stderr.strip() == line + PLACEHOLDER_KEYS[placeholder]
