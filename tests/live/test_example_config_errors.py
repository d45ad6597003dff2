"""An example started without a key (or with a bad setting) ends with the one line
``falproxy serve`` prints, not a traceback from the module that builds the app at import
time; every server the examples document, started as documented.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from falproxy.config.settings import NO_KEY_MESSAGE
from tests.support.examples_server import ROOT, argv, free_port
from tests.support.procs import FALPROXY

NO_KEY_LINE = f"falproxy: error: {NO_KEY_MESSAGE}"
SERVERS = ["fastapi-uvicorn", "django-uvicorn", "django-gunicorn", "flask-run", "flask-gunicorn"]


def start_and_wait(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    return subprocess.run(
        argv(name, free_port()),
        env={**clean, "PYTHONUNBUFFERED": "1", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", SERVERS)
def test_an_example_without_a_key_exits_with_one_line(name: str) -> None:
    completed = start_and_wait(name)
    assert completed.returncode == 4  # gunicorn stops ("App failed to load") instead of looping
    assert "Traceback" not in completed.stderr
    ours = [line for line in completed.stderr.splitlines() if line.startswith("falproxy:")]
    assert ours == [NO_KEY_LINE]


def test_a_bad_setting_in_an_example_names_the_variable() -> None:
    completed = start_and_wait("fastapi-uvicorn", FAL_KEY="id:secret", FALPROXY_BODY_TIMEOUT="x")
    assert completed.returncode == 4
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines()[-1] == (
        "falproxy: error: FALPROXY_BODY_TIMEOUT must be a number of seconds, got 'x'"
    )


def test_the_line_is_the_one_falproxy_serve_prints() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    completed = subprocess.run(
        [FALPROXY, "serve", "--port", str(free_port())],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [NO_KEY_LINE]
