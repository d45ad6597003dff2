"""Mounted proxies log their calls (issue 19, items 4 and 6).

Under FastAPI ``mount()``, the Django dispatcher and view, Flask (``flask run``, gunicorn)
and ``falproxy serve``, with the app configuring no logging, every call prints exactly one
falproxy access line in ``falproxy serve``'s format, honouring ``FALPROXY_LOG_FORMAT``,
naming the caller's address as resolved through ``FALPROXY_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.examples_server import ROOT, SERVERS, example_env, start_server
from tests.support.live import ROUTE, target
from tests.support.procs import free_port, stop, wait_until_up

ACCESS = "INFO falproxy.access: "
# A call through a proxy the test trusts, claiming to come from this address.
FORWARDED = "203.0.113.7"
# Each front end, and the path it answers when up.
SERVED = {**{name: "/" for name in SERVERS}, "falproxy-serve": "/healthz"}
SERVED["falproxy-serve-asgi"] = "/healthz"


def three_calls(base: str) -> None:
    """A relayed call, a call the policy refuses, a forwarded call from a trusted proxy."""
    with httpx.Client(base_url=base, timeout=30) as client:
        ok = client.post(
            ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
        )
        assert ok.status_code == 200
        refused = client.post(
            ROUTE, headers=target("https://fal.run/fal-ai/other"), json={"prompt": "x"}
        )
        assert refused.status_code == 403
        forwarded = target("https://fal.run/fal-ai/flux/schnell", **{"x-forwarded-for": FORWARDED})
        assert client.post(ROUTE, headers=forwarded, json={"prompt": "x"}).status_code == 200
        time.sleep(0.5)  # the access line is written as the call ends


@pytest.mark.parametrize("name", sorted(SERVED))
def test_one_text_access_line_per_call_with_no_logging_configured(name: str, fake_url: str) -> None:
    with start_server(
        name, fake_url, ready_path=SERVED[name], FALPROXY_TRUSTED_PROXIES="127.0.0.1"
    ) as running:
        three_calls(running.url)
        log = running.log()
    lines = [line for line in log.splitlines() if ACCESS in line]
    assert len(lines) == 3, log
    assert "http POST app=fal-ai/flux/dev status=200 outcome=ok " in lines[0]
    assert "http POST app=fal-ai/other status=403 outcome=refused " in lines[1]
    assert lines[0].endswith(" client=127.0.0.1") and lines[1].endswith(" client=127.0.0.1")
    assert "app=fal-ai/flux/schnell status=200" in lines[2] and lines[2].endswith(
        f" client={FORWARDED}"
    )


@pytest.mark.parametrize("name", ["fastapi-uvicorn", "flask-gunicorn", "falproxy-serve"])
def test_json_access_lines_follow_falproxy_log_format(name: str, fake_url: str) -> None:
    with start_server(
        name,
        fake_url,
        ready_path=SERVED[name],
        FALPROXY_LOG_FORMAT="json",
        FALPROXY_TRUSTED_PROXIES="127.0.0.1",
    ) as running:
        three_calls(running.url)
        log = running.log()
    access = [json.loads(line) for line in log.splitlines() if '"falproxy.access"' in line]
    assert [line["status"] for line in access] == [200, 403, 200], log
    assert [line["client"] for line in access] == ["127.0.0.1", "127.0.0.1", FORWARDED]
    assert access[1]["app_id"] == "fal-ai/other" and access[1]["outcome"] == "refused"
    assert all(line["level"] == "INFO" and line["ts"].endswith("Z") for line in access)


APP = """
import logging
from fastapi import FastAPI
from falproxy.integrations.fastapi import mount

{setup}
app = FastAPI()
mount(app)
"""
ROUTED = 'logging.basicConfig(level=logging.INFO, format="ROUTED %(name)s %(message)s")'
SILENCED = 'logging.getLogger("falproxy.access").setLevel(logging.WARNING)'


@pytest.mark.parametrize(("setup", "expected"), [(ROUTED, 3), (SILENCED, 0)])
def test_an_app_routes_or_silences_the_access_log(
    setup: str, expected: int, fake_url: str, tmp_path: Path
) -> None:
    (tmp_path / "logged_app.py").write_text(APP.format(setup=setup))
    env = example_env(fake_url, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "logged_app:app", "--port", str(port)]
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)  # type: ignore[arg-type]
            three_calls(f"http://127.0.0.1:{port}")
        finally:
            stop(process)  # type: ignore[arg-type]
        output.seek(0)
        log = output.read().decode()
    access = [line for line in log.splitlines() if "falproxy.access" in line]
    assert len(access) == expected, log
    assert all(line.startswith("ROUTED falproxy.access http POST") for line in access)
