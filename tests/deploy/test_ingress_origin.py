"""A browser's WebSocket through the shipped Ingress reaches fal (issue 19 item 11).

The Ingress terminates TLS, so the page's origin is ``https://HOST`` while the pod sees a
plain ``ws://`` handshake: the same-origin rule alone (core/origins.py) refuses it, and the
ConfigMap must list the public origin in ``FALPROXY_CORS_ORIGINS``. This test runs
``falproxy serve`` with the ConfigMap's environment and its mounted TOML file, in front of
a real Redis and the fake fal, and sends the handshake the ingress controller forwards for
a browser on that origin: ``Host`` kept, ``Origin`` the page's, ``X-Forwarded-For`` and
``X-Forwarded-Proto: https`` added.

What the test rewrites, and only that: the Redis address (a local ``redis-server``), the
mounted file's path, the key (the test key; the Secret is created out of band), the fal
hosts (mapped to the fake), ``FALPROXY_TRUSTED_PROXIES`` (127.0.0.1, where the "ingress"
connects from here) and ``FALPROXY_ALLOWED_HOSTS`` (the Ingress's host: a pod binds
0.0.0.0, where any ``Host`` passes, but ``falproxy serve`` on loopback answers only
loopback names unless hosts are listed).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.deploy.manifests import by_kind, container_env
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env
from tests.support.redis_support import running_redis
from tests.support.ws_helpers import (
    pack,
    realtime_stats,
    refusal,
    relay_url,
    reset_realtime,
    unpack,
)

# An app the ConfigMap's allow-list admits (fal-ai/flux/**), served by the fake's realtime.
REALTIME_TARGET = "wss://fal.run/fal-ai/flux/dev/realtime"
FOREIGN_ORIGIN = "https://evil.example"
REDIS_IN_FILES = "redis://redis:6379"


def ingress_host() -> str:
    (rule,) = by_kind("Ingress")["spec"]["rules"]
    host: str = rule["host"]
    return host


def shipped_env(redis_port: int, scratch: Path) -> dict[str, str]:
    """The container's environment from the manifests, made local (see the module doc)."""
    env = container_env()
    toml = scratch / "falproxy.toml"
    toml.write_text(by_kind("ConfigMap")["data"]["falproxy.toml"])
    env["FALPROXY_CONFIG"] = str(toml)
    assert env["FALPROXY_REDIS_URL"].startswith(REDIS_IN_FILES)
    env["FALPROXY_REDIS_URL"] = env["FALPROXY_REDIS_URL"].replace(
        REDIS_IN_FILES, f"redis://127.0.0.1:{redis_port}"
    )
    env["FALPROXY_TRUSTED_PROXIES"] = "127.0.0.1"
    env["FALPROXY_ALLOWED_HOSTS"] = ingress_host()
    env.pop("FAL_KEY")  # a placeholder in the example Secret; proxy_env sets the test key
    return env


@pytest.fixture(scope="module")
def pod(fake_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A replica with the shipped settings; its loopback port."""
    with running_redis() as redis:
        env = proxy_env(fake_url, **shipped_env(redis.port, tmp_path_factory.mktemp("pod")))
        port = free_port()
        with falproxy_serve(env, port):
            yield port


def through_the_ingress(pod: int, origin: str) -> dict[str, Any]:
    """``connect`` arguments for what ingress-nginx forwards of a browser's handshake.

    The URL names the Ingress's host (so ``Host`` is the public one, as the ingress keeps
    it) while the socket goes to the pod's loopback port.
    """
    headers = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": ingress_host(),
        "X-Forwarded-Port": "443",
    }
    return {
        "uri": relay_url(f"http://{ingress_host()}", target=REALTIME_TARGET),
        "sock": socket.create_connection(("127.0.0.1", pod), timeout=10),
        "origin": origin,
        "additional_headers": headers,
        "user_agent_header": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0",
    }


def test_a_page_on_the_public_origin_opens_a_socket(pod: int, fake_url: str) -> None:
    reset_realtime(fake_url)
    arguments = through_the_ingress(pod, f"https://{ingress_host()}")
    with connect(arguments.pop("uri"), **arguments) as ws:
        ws.send(pack({"prompt": "a lighthouse", "request_id": "through-the-ingress"}))
        output = unpack(ws.recv(timeout=10))
    assert output["request_id"] == "through-the-ingress"
    assert realtime_stats(fake_url)["opened"] == 1


def test_a_foreign_page_is_still_refused(pod: int, fake_url: str) -> None:
    reset_realtime(fake_url)
    arguments = through_the_ingress(pod, FOREIGN_ORIGIN)
    status, body = refusal(arguments.pop("uri"), **arguments)
    assert (status, body) == (403, {"detail": "WebSockets from this origin are not allowed"})
    assert realtime_stats(fake_url)["opened"] == 0
