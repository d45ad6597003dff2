"""Structured logs (issue 13): under ``FALPROXY_LOG_FORMAT=json`` every line
``falproxy serve`` and uvicorn print is one JSON object; text stays the default; start-up
says where the proxy answers in one line, and fake mode's normal mappings are no warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.procs import (
    FALPROXY,
    falproxy_serve,
    free_port,
    proxy_env,
    stop,
    wait_until_up,
)

ROUTE = "/api/fal/proxy"
JSON_HEADERS = {"content-type": "application/json"}


def calls(base: str) -> None:
    """A relayed call, a refused target, a 404 and a health check."""
    with httpx.Client(base_url=base, timeout=30) as client:
        ok = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev", **JSON_HEADERS}
        assert client.post(ROUTE, headers=ok, json={"prompt": "a fox"}).status_code == 200
        bad = {"x-fal-target-url": "https://evil.example/x", **JSON_HEADERS}
        assert client.post(ROUTE, headers=bad, json={}).status_code == 412
        assert client.get("/nowhere").status_code == 404
        assert client.get("/healthz").status_code == 200


def output_after_calls(env: dict[str, str], *args: str) -> str:
    port = free_port()
    with falproxy_serve(env, port, *args) as served:
        calls(f"http://127.0.0.1:{port}")
        time.sleep(0.3)  # the access line is written as the call ends
        assert stop(served.process) == 0
        return served.stderr()


@pytest.mark.parametrize("variable", ["FALPROXY_LOG_FORMAT", "FALPROXY_ACCESS_LOG_FORMAT"])
def test_every_line_is_one_json_object(fake_url: str, variable: str) -> None:
    output = output_after_calls(proxy_env(fake_url, **{variable: "json"}), "--fake")
    lines = [json.loads(line) for line in output.splitlines()]  # fails on any text line
    assert lines and all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    assert all(line["ts"].endswith("Z") and "T" in line["ts"] for line in lines)
    assert {line["logger"] for line in lines} >= {"falproxy", "falproxy.access", "uvicorn.error"}
    access = [line for line in lines if line["logger"] == "falproxy.access"]
    by_status = {line["status"]: line for line in access}
    assert by_status[200]["app_id"] == "fal-ai/flux/dev" and by_status[200]["outcome"] == "ok"
    assert by_status[200]["admitted"] is True and by_status[200]["bytes_up"] > 0
    assert by_status[412]["outcome"] == "refused"
    starts = [line for line in lines if line["message"].startswith("serving ")]
    assert len(starts) == 1
    assert starts[0]["mode"] == "FAKE" and starts[0]["url"].endswith(ROUTE)
    assert not any(line["level"] == "WARNING" and "upstream" in line["message"] for line in lines)


def test_text_stays_the_default_with_one_start_line(fake_url: str) -> None:
    output = output_after_calls(proxy_env(fake_url, FALPROXY_ALLOWED_ENDPOINTS="fal-ai/flux/**"))
    assert not output.lstrip().startswith("{")
    starts = [line for line in output.splitlines() if " falproxy: serving http://" in line]
    assert len(starts) == 1, output
    assert f"{ROUTE};" in starts[0] and "mode fal" in starts[0]
    assert "allowed endpoints: fal-ai/flux/**" in starts[0]
    assert "http POST app=fal-ai/flux/dev status=200 outcome=ok" in output


def test_fake_mode_mappings_are_not_warnings(fake_url: str) -> None:
    env = proxy_env(fake_url)  # no allow-list either: against the fake nothing is spent
    output = output_after_calls(env, "--fake")
    assert "upstream mapped" not in output and " WARNING " not in output, output
    assert "FAKE MODE" in next(line for line in output.splitlines() if "serving" in line)


def test_a_bad_log_format_is_one_line() -> None:
    env = proxy_env("http://127.0.0.1:9", FALPROXY_LOG_FORMAT="xml")
    done = subprocess.run(
        [FALPROXY, "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2 and "FALPROXY_LOG_FORMAT" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_lines_printed_while_settings_load_are_json_too(fake_url: str, tmp_path: Path) -> None:
    """The parent warns about tracing (extra missing) before uvicorn starts: JSON as well."""
    port = free_port()
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # a plain install, no otel extra
        "from falproxy.standalone.cli import main\n"
        f"sys.exit(main(['serve', '--port', '{port}']))\n"
    )
    env = proxy_env(
        fake_url, FALPROXY_LOG_FORMAT="json", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"
    )
    log = tmp_path / "output.log"
    with open(log, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-c", script], env=env, stdout=sink, stderr=sink, text=True
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    finally:
        assert stop(process) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    warnings = [line for line in lines if "falproxy[otel]" in line["message"]]
    assert warnings and all(line["level"] == "WARNING" for line in warnings)
