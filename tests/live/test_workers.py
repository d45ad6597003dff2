"""``falproxy serve --workers N`` is one service (issue 13): ``/metrics`` sums every
worker, and in-memory rate limits never silently multiply by N.
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from falproxy import ProxyConfig, RateLimit
from falproxy.core.errors import ConfigError
from falproxy.ops.metrics import MULTIPROC_DIR_ENV
from falproxy.ops.workers import check_worker_limits
from tests.support.procs import FALPROXY, falproxy_serve, free_port, proxy_env

ROUTE = "/api/fal/proxy"
ECHO = {"x-fal-target-url": "https://fal.run/fake/echo", "content-type": "application/json"}
MAX_CALLS = 200  # bounded: calls spread over two workers long before this
SCRAPES = 12
OK = {"kind": "http", "app": "fake/echo", "status": "200", "outcome": "ok"}


def call(base: str) -> int:
    """One call on a fresh connection, so the kernel may hand it to either worker."""
    return httpx.post(f"{base}{ROUTE}", headers=ECHO, json={}, timeout=30).status_code


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def metrics_dir(parent: int) -> Path:
    """The directory the serving parent handed its workers (read from a worker's env)."""
    for pid in worker_pids(parent):
        for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            name, _, value = item.decode().partition("=")
            if name == MULTIPROC_DIR_ENV:
                return Path(value)
    raise AssertionError("no worker was given a metrics directory")


def served_ok(base: str) -> float:
    """``falproxy_requests_total`` of the echo calls in one scrape (fresh connection)."""
    response = httpx.get(f"{base}/metrics", timeout=10)
    assert response.status_code == 200
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "falproxy_requests_total" and sample.labels == OK:
                return sample.value
    return 0.0


def spread_calls(base: str, directory: Path) -> int:
    """Calls in parallel batches until both workers have counted some; how many were made."""
    made = 0
    with ThreadPoolExecutor(max_workers=6) as pool:
        while len(list(directory.glob("counter_*.db"))) < 2:
            assert made < MAX_CALLS, "calls never reached the second worker"
            assert set(pool.map(call, [base] * 12)) == {200}
            made += 12
    return made


def test_scrapes_under_two_workers_report_the_sum(fake_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = proxy_env(fake_url)
    env.pop(MULTIPROC_DIR_ENV, None)
    with falproxy_serve(env, port, "--workers", "2") as served:
        directory = metrics_dir(served.process.pid)
        made = spread_calls(base, directory)
        scraped = [served_ok(base) for _ in range(SCRAPES)]
        assert scraped == [made] * SCRAPES, "every scrape reports both workers' calls"
    assert not directory.exists(), "the parent removes the directory it created"


def test_a_named_directory_is_cleaned_at_start(fake_url: str, tmp_path: Path) -> None:
    """A previous run's files (other pids) must not add to this run's numbers."""
    env = proxy_env(fake_url, **{MULTIPROC_DIR_ENV: str(tmp_path)})
    for run in range(2):
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with falproxy_serve(env, port, "--workers", "2"):
            made = spread_calls(base, tmp_path) if run == 0 else 0
            assert call(base) == 200
            assert {served_ok(base) for _ in range(SCRAPES)} == {made + 1}, run
    assert tmp_path.is_dir(), "a directory the user named is kept"


def test_in_memory_limits_refuse_several_workers(fake_url: str) -> None:
    env = proxy_env(fake_url, FALPROXY_RATE_LIMIT="2/minute")
    command = [FALPROXY, "serve", "--port", str(free_port()), "--workers", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "FALPROXY_REDIS_URL" in lines[0], done.stderr
    assert "FALPROXY_PER_WORKER_LIMITS=true" in lines[0]
    as_json = subprocess.run(
        command, env={**env, "FALPROXY_LOG_FORMAT": "json"}, capture_output=True, text=True
    )
    assert as_json.returncode == 2
    assert "FALPROXY_REDIS_URL" in json.loads(as_json.stderr)["message"]
    # Opting in starts, with each worker counting its own budget.
    port = free_port()
    with falproxy_serve({**env, "FALPROXY_PER_WORKER_LIMITS": "true"}, port, "--workers", "2"):
        assert call(f"http://127.0.0.1:{port}") == 200


def test_shared_storage_or_one_worker_needs_no_opt_in() -> None:
    limits = (RateLimit("2/minute"),)
    check_worker_limits(ProxyConfig(rate_limits=limits), 1)
    check_worker_limits(ProxyConfig(rate_limits=limits, redis_url="redis://127.0.0.1:1/0"), 4)
    check_worker_limits(ProxyConfig(), 4)
    try:
        check_worker_limits(ProxyConfig(ws_max_sockets=3), 2)
    except ConfigError as exc:
        assert "FALPROXY_WS_MAX_SOCKETS" in str(exc)
    else:
        raise AssertionError("per-identity socket counts are in memory too")
    redis = "redis://127.0.0.1:1/0"
    with pytest.raises(ConfigError, match="FALPROXY_WS_MAX_SOCKETS"):  # sockets live per worker
        check_worker_limits(ProxyConfig(ws_max_sockets=3, redis_url=redis), 2)
    check_worker_limits(ProxyConfig(ws_message_rate="10/second", redis_url=redis), 2)
    check_worker_limits(ProxyConfig(ws_max_sockets=3, per_worker_limits=True), 2)
    assert os.environ.get(MULTIPROC_DIR_ENV) is None, "tests run single-process metrics"
