"""Allow-list entries written the wrong way stop start-up in one line (issue 19, item 1).

``FALPROXY_ALLOWED_ENDPOINTS='https://fal.run/fal-ai/flux/**'`` or ``'flux'`` used to be
accepted and then refuse every call with 403; now ``falproxy serve`` and ``falproxy check``
name the variable (or file key), the entry, the form expected and a fix. A 403 from the
endpoint policy names the refused app and the setting, and its access line carries the app.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from falproxy.ops.metrics import MAX_APP_LABEL_LENGTH
from tests.support.cli import clean_env, run
from tests.support.procs import falproxy_serve, free_port, proxy_env

FORM = "[ns/]owner/alias[/...]"
# (entry, what the line says is wrong, the suggestion it offers or None)
WRONG_ENDPOINTS = [
    ("https://fal.run/fal-ai/flux/**", "has a scheme or a host", "fal-ai/flux/**"),
    ("queue.fal.run/fal-ai/flux/**", "has a scheme or a host", "fal-ai/flux/**"),
    ("wss://ws.fal.run/fal-ai/realtime", "has a scheme or a host", "fal-ai/realtime"),
    ("/fal-ai/flux/dev", "starts with /", "fal-ai/flux/dev"),
    ("flux", "can never match an app id", "*/flux/**"),
    ("*", "can never match an app id", "*/*/**"),
    ("fal-ai/flux/..", "can never match an app id", None),
]


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize(("entry", "problem", "fix"), WRONG_ENDPOINTS)
@pytest.mark.parametrize("command", ["serve", "check"])
def test_a_wrong_endpoint_entry_stops_start_up_in_one_line(
    command: str, entry: str, problem: str, fix: str | None
) -> None:
    env = clean_env(FAL_KEY="test-id:test-secret", FALPROXY_ALLOWED_ENDPOINTS=f"fal-ai/x,{entry}")
    args = [command, "--port", str(free_port())] if command == "serve" else [command]
    completed = run(args, env)
    assert completed.returncode == 2
    line = one_line(completed.stderr)
    assert line.startswith(f"falproxy: error: FALPROXY_ALLOWED_ENDPOINTS entry {entry!r} ")
    assert problem in line and FORM in line
    if fix is None:
        assert "did you mean" not in line
    else:
        assert line.endswith(f"did you mean {fix!r}?")


def test_a_url_entry_with_a_scheme_is_answered_the_same_way() -> None:
    env = clean_env(FAL_KEY="test-id:test-secret", FALPROXY_ALLOWED_URLS="https://fal.run/**")
    line = one_line(run(["check"], env).stderr)
    assert line == (
        "falproxy: error: FALPROXY_ALLOWED_URLS entry 'https://fal.run/**' has a scheme: "
        "URL globs match host/path?query; did you mean 'fal.run/**'?"
    )


def test_a_wrong_entry_in_the_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "falproxy.toml"
    path.write_text('allowed_endpoints = ["fal-ai/flux/**", "flux"]\n')
    completed = run(["check", "--config", str(path)], clean_env(FAL_KEY="test-id:test-secret"))
    assert completed.returncode == 2
    line = one_line(completed.stderr)
    assert f"{path}: allowed_endpoints entry 'flux' can never match an app id {FORM}" in line
    assert line.endswith("did you mean '*/flux/**'?")


def test_a_refused_app_is_named_in_the_403_and_its_access_line(fake_url: str) -> None:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_ALLOWED_ENDPOINTS="fal-ai/flux/**")
    long_app = "fal-ai/" + "x" * 200
    with falproxy_serve(env, port) as served:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for app in ("fal-ai/fast-sdxl", long_app):
                headers = {"x-fal-target-url": f"https://fal.run/{app}"}
                response = client.post("/api/fal/proxy", headers=headers, json={})
                assert response.status_code == 403
                detail = response.json()["detail"]
                assert app[:MAX_APP_LABEL_LENGTH] in detail
                assert "FALPROXY_ALLOWED_ENDPOINTS" in detail
                assert len(detail) < 200 + MAX_APP_LABEL_LENGTH  # never the whole long id
        time.sleep(0.3)  # the access line is written as the call ends
        output = served.stderr()
    assert "http POST app=fal-ai/fast-sdxl status=403 outcome=refused" in output
    cut = long_app[:MAX_APP_LABEL_LENGTH]
    assert f"app={cut} status=403" in output, output
