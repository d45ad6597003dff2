"""Ownership and budgets shared through Redis by two ``falproxy serve`` replicas.

Two real processes on their own ports, one real ``redis-server`` and the fake fal (its
billing set per test): a request submitted on one replica is its owner's on the other; a
budget spent through both replicas refuses one user and not another; a global budget;
a result read on both replicas is charged once (``falproxy usage --json`` says so); and
Redis stopped mid-run refuses calls with 503, logs it and turns ``/readyz`` to 503 naming
``redis``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEY, fake_upstreams
from tests.live.test_ownership import call, submit, urls, wait_completed
from tests.support.cli import FALPROXY, clean_env
from tests.support.cli import run as run_cli
from tests.support.ports import free_port
from tests.support.redis_support import RedisServer, pytestmark  # noqa: F401 (the skip rule)

RUN = "https://fal.run/fal-ai/flux/dev"


@contextmanager
def replica(env: dict[str, str], log: Path) -> Iterator[httpx.Client]:
    """``falproxy serve`` on a free port, its stderr in ``log``."""
    port = free_port()
    with log.open("w") as sink:
        args = [FALPROXY, "serve", "--port", str(port), "--log-level", "info"]
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=sink)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                deadline = time.monotonic() + 20
                while True:
                    assert process.poll() is None, log.read_text()
                    try:
                        client.get("/healthz")
                        break
                    except httpx.TransportError:
                        assert time.monotonic() < deadline, "falproxy serve did not start"
                        time.sleep(0.1)
                yield client
        finally:
            process.terminate()
            process.wait(timeout=10)
    assert "Traceback" not in log.read_text()


@contextmanager
def replicas(
    fake_url: str, redis: RedisServer, tmp_path: Path, **settings: str
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    upstreams = ",".join(f"{h}={b}" for h, b in fake_upstreams(fake_url).items())
    env = clean_env(
        FAL_KEY=TEST_KEY,
        FALPROXY_UPSTREAMS=upstreams,
        FALPROXY_AUTH_TOKENS="tok-a,tok-b",
        FALPROXY_REDIS_URL=redis.url,
        **settings,
    )
    with ExitStack() as stack:
        first = stack.enter_context(replica(env, tmp_path / "first.log"))
        second = stack.enter_context(replica(env, tmp_path / "second.log"))
        yield first, second


def run(client: httpx.Client, token: str) -> int:
    return call(client, "POST", RUN, token, json={"prompt": "a fox"}).status_code


def usage(redis: RedisServer) -> dict[str, object]:
    answer = run_cli(["usage", "--json"], clean_env(FALPROXY_REDIS_URL=redis.url))
    assert answer.returncode == 0, answer.stderr
    document: dict[str, object] = json.loads(answer.stdout)
    return document


def test_two_identities_one_request_id(
    fake_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    with replicas(fake_url, redis_server, tmp_path) as (first, second):
        request_id = submit(first, "tok-a")
        status = urls(request_id)["status"][1]
        assert call(second, "GET", status, "tok-a").status_code in (200, 202)
        assert call(second, "GET", status, "tok-b").status_code == 404
        assert call(first, "GET", status, "tok-b").status_code == 404


def test_a_budget_spent_by_one_user_across_replicas(
    fake_url: str, fake: httpx.Client, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake.post("/__fake__/billing", json={"prices": {"fal-ai/flux/dev": 0.01}})
    settings = {"FALPROXY_SPEND_LIMIT": "0.03/day fal-ai/flux/**"}
    with replicas(fake_url, redis_server, tmp_path, **settings) as (first, second):
        statuses = [run((first, second)[n % 2], "tok-a") for n in range(4)]
        assert statuses == [200, 200, 200, 402]
        assert run(second, "tok-b") == 200
    report = usage(redis_server)
    assert {
        "who": "id:token-1",
        "app": "fal-ai/flux/dev",
        "today_usd": 0.03,
        "month_usd": 0.03,
    } in (
        report["usage"]  # type: ignore[operator]
    )


def test_a_global_budget_across_replicas(
    fake_url: str, fake: httpx.Client, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake.post("/__fake__/billing", json={"prices": {"fal-ai/flux/dev": 0.01}})
    settings = {"FALPROXY_SPEND_LIMIT": "0.02/month per=global"}
    with replicas(fake_url, redis_server, tmp_path, **settings) as (first, second):
        assert [run(first, "tok-a"), run(second, "tok-b"), run(first, "tok-b")] == [200, 200, 402]


def test_a_result_read_on_both_replicas_is_charged_once(
    fake_url: str, fake: httpx.Client, redis_server: RedisServer, tmp_path: Path
) -> None:
    fake.post("/__fake__/billing", json={"units": {"fal-ai/flux": 5}})  # 0.01 a unit
    settings = {"FALPROXY_SPEND_LIMIT": "10/day"}
    with replicas(fake_url, redis_server, tmp_path, **settings) as (first, second):
        request_id = submit(first, "tok-a")
        wait_completed(second, request_id, "tok-a")
        result = urls(request_id)["result"][1]
        assert call(first, "GET", result, "tok-a").status_code == 200
        assert call(second, "GET", result, "tok-a").status_code == 200
    report = usage(redis_server)
    (budget,) = report["budgets"]  # type: ignore[misc]
    assert budget["spent_usd"] == pytest.approx(0.05)  # five units once, not twice
    assert budget["held_usd"] == 0


def test_redis_stopped_mid_run_fails_closed(
    fake_url: str, fake: httpx.Client, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = {"FALPROXY_SPEND_LIMIT": "10/day"}
    with replicas(fake_url, redis_server, tmp_path, **settings) as (first, second):
        request_id = submit(first, "tok-a")
        assert first.get("/readyz").status_code == 200
        redis_server.stop()
        started = time.monotonic()
        refused = [
            call(first, "POST", RUN, "tok-a", json={"prompt": "x"}),
            call(second, "GET", urls(request_id)["status"][1], "tok-a"),
        ]
        assert time.monotonic() - started < 10  # milliseconds per call, not TCP timeouts
        for answer in refused:
            assert answer.status_code == 503
            assert answer.json()["detail"].startswith("Request ownership and budgets")
            assert answer.headers["retry-after"] == "1"
        ready = first.get("/readyz")
        assert ready.status_code == 503
        assert "redis" in ready.json()["failing"]
        metrics = first.get("/metrics").text
        assert "falproxy_request_store_errors_total 1.0" in metrics
    log = (tmp_path / "first.log").read_text()
    assert "request ownership and budget storage failed" in log
