"""Fake mode is explicit and loud: ``falproxy serve --fake`` or ``FALPROXY_FAKE_URL`` only,
the fake's key instead of FAL_KEY, and a FAKE MODE banner from every worker."""

from __future__ import annotations

import re

import httpx

from falproxy.core.keys import FAKE_CREDENTIAL_VALUE
from falproxy.standalone.server import FORWARDED_IGNORED_WARNING, STALE_FAKE_BASE_WARNING
from tests.conftest import TEST_KEY_SECRET
from tests.support.live import wait_until
from tests.support.ports import free_port
from tests.support.procs import falproxy_fake, falproxy_serve, proxy_env

ROUTE = "/api/fal/proxy"
RUN = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev", "content-type": "application/json"}
BANNER = "FAKE MODE: every fal call is answered by the fake fal at"


def worker_pids(stderr: str) -> set[str]:
    return set(re.findall(r"Started server process \[(\d+)\]", stderr))


def test_fake_url_maps_every_host_to_the_fake_with_its_key_in_every_worker() -> None:
    """The fake accepts only its own key: FAL_KEY (also set) must never be sent to it."""
    with falproxy_fake(
        free_port(), "--speed", "0.05", "--expected-key", FAKE_CREDENTIAL_VALUE
    ) as fake:
        env = proxy_env("http://127.0.0.1:1", FALPROXY_FAKE_URL=fake)
        env.pop("FALPROXY_UPSTREAMS")
        port = free_port()
        with falproxy_serve(env, port, "--workers", "2") as served:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, timeout=30) as client:
                for _ in range(4):
                    response = client.post(ROUTE, headers=RUN, json={"prompt": "a fox"})
                    assert response.status_code == 200, response.text
                    assert response.json()["images"][0]["url"].startswith(fake)
                queue = {**RUN, "x-fal-target-url": "https://queue.fal.run/fal-ai/flux/dev"}
                assert client.post(ROUTE, headers=queue, json={}).status_code == 200
            # Workers start side by side on the socket the parent bound: the first may
            # answer every call before the second has printed its start (a loaded machine).
            wait_until(lambda: len(worker_pids(served.stderr())) == 2, timeout=30)
            stderr = served.stderr()
    banners = [line for line in stderr.splitlines() if BANNER in line]
    assert len(banners) >= 2, stderr  # each worker (and the parent, which validated)
    assert all(fake in line for line in banners)
    assert TEST_KEY_SECRET not in stderr


def test_leftover_fake_base_does_not_turn_on_fake_mode(fake_url: str) -> None:
    """A stale FALPROXY_FAKE_BASE once sent every call to it, with no banner."""
    env = proxy_env(fake_url, FALPROXY_FAKE_BASE="http://127.0.0.1:1")
    port = free_port()
    with falproxy_serve(env, port) as served:
        echo = {**RUN, "x-fal-target-url": "https://fal.run/fake/echo"}
        response = httpx.post(f"http://127.0.0.1:{port}{ROUTE}", headers=echo, json={}, timeout=30)
        stderr = served.stderr()
    assert response.status_code == 200, response.text  # the configured upstream answered
    assert BANNER not in stderr
    assert STALE_FAKE_BASE_WARNING in stderr


def test_serve_fake_prints_the_banner() -> None:
    port = free_port()
    env = proxy_env("http://127.0.0.1:1")
    with falproxy_serve(env, port, "--fake", "--fake-speed", "0.05") as served:
        response = httpx.post(
            f"http://127.0.0.1:{port}{ROUTE}", headers=RUN, json={"prompt": "x"}, timeout=30
        )
        stderr = served.stderr()
    assert response.status_code == 200
    assert stderr.count(BANNER) == 1, stderr  # one process: the parent is the worker


def test_forwarded_allow_ips_is_reported_as_dead(fake_url: str) -> None:
    env = proxy_env(fake_url, FORWARDED_ALLOW_IPS="*")
    with falproxy_serve(env, free_port()) as served:
        stderr = served.stderr()
    assert FORWARDED_IGNORED_WARNING in stderr
