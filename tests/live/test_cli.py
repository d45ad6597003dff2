"""The `falproxy` command, run as a real process."""

from __future__ import annotations

import json
import resource
import subprocess
import time

import httpx

from tests.support.cli import FALPROXY, RUN, clean_env, run, running
from tests.support.live import raw_request
from tests.support.ports import free_port


def test_serve_without_key_refuses_and_names_both_remedies() -> None:
    completed = run(["serve", "--port", str(free_port())], clean_env())
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "FAL_KEY" in lines[0] and "--fake" in lines[0]


def test_serve_fake_answers_a_run_and_its_image_downloads() -> None:
    port = free_port()
    with running(
        ["serve", "--fake", "--port", str(port), "--fake-speed", "0.05"], clean_env(), port
    ) as base:
        response = httpx.post(f"{base}/api/fal/proxy", headers=RUN, json={"prompt": "a fox"})
        assert response.status_code == 200
        image = response.json()["images"][0]
        downloaded = httpx.get(image["url"])
        assert downloaded.status_code == 200
        assert downloaded.content.startswith(b"\x89PNG")


def test_fake_auto_uses_real_fal_when_a_key_is_set() -> None:
    port = free_port()
    fake_port = free_port()
    env = clean_env(FAL_KEY="test-id:test-secret")
    with (
        running(
            [
                "fake",
                "--port",
                str(fake_port),
                "--speed",
                "0.05",
                "--expected-key",
                "test-id:test-secret",
            ],
            env,
            fake_port,
        ) as fake,
        running(
            ["serve", "--fake=auto", "--port", str(port), "--upstream", f"fal.run={fake}/run"],
            env,
            port,
        ) as base,
    ):
        response = httpx.post(f"{base}/api/fal/proxy", headers=RUN, json={"prompt": "x"})
        assert response.status_code == 200
        assert "/_fake/" not in response.json()["images"][0]["url"]


def test_check_prints_masked_config() -> None:
    completed = run(["check"], clean_env(FAL_KEY="abcdefghijklmnopqrst:verysecretpart"))
    assert completed.returncode == 0
    report = json.loads(completed.stdout)
    assert "verysecretpart" not in completed.stdout
    assert report["config"]["route"] == "/api/fal/proxy"
    assert any("endpoint allow-list" in warning for warning in report["warnings"])


def test_bad_configuration_is_one_line_exit_2() -> None:
    env = clean_env(FAL_KEY="id:secret", FALPROXY_UPSTREAMS="evil.example=http://127.0.0.1:1")
    for args in (["check"], ["serve", "--port", str(free_port())]):
        completed = run(args, env)
        assert completed.returncode == 2
        assert len(completed.stderr.strip().splitlines()) == 1
        assert "Traceback" not in completed.stderr


def test_key_with_trailing_newline_is_refused_without_printing_it() -> None:
    completed = run(["check"], clean_env(FAL_KEY="id:topsecretvalue\n"))
    assert completed.returncode == 2
    assert "topsecretvalue" not in completed.stderr + completed.stdout


def test_check_warns_about_a_key_that_is_not_id_colon_secret() -> None:
    completed = run(["check"], clean_env(FAL_KEY="abcdefabcdefabcdef"))
    assert completed.returncode == 0
    warnings = json.loads(completed.stdout)["warnings"]
    assert any(w.startswith("FAL_KEY does not look like a fal key") for w in warnings)
    assert "abcdefabcdefabcdef" not in completed.stdout + completed.stderr


def test_unknown_variable_is_one_line_with_the_closest_name() -> None:
    env = clean_env(FAL_KEY="id:secret", FALPROXY_RATELIMIT="60/minute")
    for args in (["check"], ["serve", "--port", str(free_port())]):
        completed = run(args, env)
        assert completed.returncode == 2
        assert completed.stderr.strip().splitlines() == [
            "falproxy: error: unknown variable FALPROXY_RATELIMIT: "
            "did you mean FALPROXY_RATE_LIMIT?"
        ]


def test_rate_rules_separated_by_commas_say_how_to_separate_them() -> None:
    env = clean_env(FAL_KEY="id:secret", FALPROXY_RATE_LIMIT="60/minute, 5/minute fal-ai/**")
    completed = run(["serve", "--port", str(free_port())], env)
    assert completed.returncode == 2
    (line,) = completed.stderr.strip().splitlines()
    assert line.startswith("falproxy: error: FALPROXY_RATE_LIMIT has a bad rate limit")
    assert "expected LIMIT [ENDPOINT_GLOB]" in line and "separated by ';', not ','" in line


def test_upstream_credentials_are_masked_in_check_and_start_up_lines() -> None:
    upstream = "fal.run=http://user:upstreampw@127.0.0.1:1/run"
    env = clean_env(FAL_KEY="id:secret", FALPROXY_UPSTREAMS=upstream, FALPROXY_ALLOW_ANONYMOUS="1")
    completed = run(["check"], env)
    assert completed.returncode == 0
    assert "upstreampw" not in completed.stdout + completed.stderr
    shown = json.loads(completed.stdout)["config"]["upstreams"]
    assert shown == {"fal.run": "http://user:****@127.0.0.1:1/run"}
    bad = clean_env(FAL_KEY="id:secret", FALPROXY_UPSTREAMS="fal.run=ftp://u:upstreampw@h/x")
    refused = run(["check"], bad)
    assert refused.returncode == 2 and "upstreampw" not in refused.stderr
    assert "FALPROXY_UPSTREAMS" in refused.stderr
    port = free_port()
    process = subprocess.Popen(
        [FALPROXY, "serve", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while process.poll() is None and time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert "upstream mapped: fal.run -> http://user:****@127.0.0.1:1/run" in stderr
    assert "upstreampw" not in stderr


def test_bad_flags_are_named_as_flags() -> None:
    env = clean_env(FAL_KEY="id:secret")
    port = str(free_port())
    upstream = run(["serve", "--port", port, "--upstream", "fal.run=ftp://u:flagpw@h/x"], env)
    assert upstream.returncode == 2
    assert upstream.stderr.strip() == (
        "falproxy: error: --upstream for fal.run must be an http(s) base URL, "
        "got 'ftp://u:****@h/x'"
    )
    route = run(["serve", "--port", port, "--route", "fal"], env)
    assert route.stderr.strip() == (
        "falproxy: error: --route must be an absolute path such as /api/fal/proxy"
    )


def test_server_setting_picks_the_front_end_and_the_flag_overrides_it() -> None:
    """FALPROXY_SERVER and --server (issue 14): the native protocol answers a malformed
    request with JSON, uvicorn's protocol with its own plain text."""
    env = clean_env(FALPROXY_SERVER="asgi")
    for flags, content_type in (([], b"text/plain"), (["--server", "native"], b"application/json")):
        port = free_port()
        with running(["serve", "--fake", "--port", str(port), *flags], env, port):
            answer = raw_request(f"http://127.0.0.1:{port}", b"not http\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"content-type: " + content_type in answer.lower()
    completed = run(["serve", "--fake", "--port", "1"], clean_env(FALPROXY_SERVER="uvicorn"))
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "falproxy: error: FALPROXY_SERVER must be one of native, asgi"
    ]


def test_a_connection_cap_the_descriptor_limit_cannot_honour_stops_start_up() -> None:
    env = clean_env(FAL_KEY="id:secret", FALPROXY_MAX_CONNECTIONS="100000")
    completed = subprocess.run(
        [FALPROXY, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)),
    )
    assert completed.returncode == 2
    line = completed.stderr.strip()
    assert len(line.splitlines()) == 1 and "FALPROXY_MAX_CONNECTIONS=100000" in line
    assert "ulimit -n" in line
