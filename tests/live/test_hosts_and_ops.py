"""The Host rule (DNS rebinding) and the operational endpoints' token, on live servers.

``falproxy serve`` bound to loopback answers only loopback names unless
FALPROXY_ALLOWED_HOSTS says otherwise; a proxied call or socket for another name is a 421
that never reaches fal. FALPROXY_METRICS_TOKEN guards /metrics on every front end (the
ASGI app and the WSGI adapter share OpsEndpoints).
"""

from __future__ import annotations

import httpx

from falproxy import FalCredential, ProxyConfig
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import TEST_KEY
from tests.support.live import ROUTE, raw_request
from tests.support.procs import falproxy_serve, free_port, proxy_env

RUN = {
    "x-fal-target-url": "https://fal.run/fal-ai/flux/schnell",
    "content-type": "application/json",
}
PROMPT = {"prompt": "a lighthouse"}
REALTIME = "wss://fal.run/fal-ai/fast-lcm-diffusion/realtime"


def submits(fake: httpx.Client) -> int:
    return int(fake.get("/__fake__/stats").json()["requests"])


def test_loopback_serve_refuses_other_host_names(fake_url: str, fake: httpx.Client) -> None:
    port = free_port()
    with falproxy_serve(proxy_env(fake_url), port):
        base = f"http://127.0.0.1:{port}"
        before = submits(fake)
        rebound = httpx.post(base + ROUTE, headers={**RUN, "host": "attacker.example"}, json=PROMPT)
        assert rebound.status_code == 421
        assert "FALPROXY_ALLOWED_HOSTS" in rebound.json()["detail"]  # says what to change
        assert submits(fake) == before, "a call for another host name reached fal"
        for name in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
            ok = httpx.post(base + ROUTE, headers={**RUN, "host": name}, json=PROMPT)
            assert ok.status_code == 200, (name, ok.text)
        handshake = (
            f"GET {ROUTE}?fal_target_url={REALTIME} HTTP/1.1\r\n"
            "host: attacker.example\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        before = submits(fake)
        answer = raw_request(base, handshake.encode(), timeout=5)
        assert answer.startswith(b"HTTP/1.1 421"), answer[:200]
        assert submits(fake) == before


def test_allowed_hosts_replace_the_loopback_default(fake_url: str) -> None:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_ALLOWED_HOSTS="proxy.example")
    with falproxy_serve(env, port):
        base = f"http://127.0.0.1:{port}"
        named = httpx.post(base + ROUTE, headers={**RUN, "host": "proxy.example"}, json=PROMPT)
        assert named.status_code == 200, named.text
        other = httpx.post(base + ROUTE, headers={**RUN, "host": f"localhost:{port}"}, json=PROMPT)
        assert other.status_code == 421


def test_metrics_token_guards_metrics_on_serve(fake_url: str) -> None:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_METRICS_TOKEN="scrape-secret")
    with falproxy_serve(env, port):
        url = f"http://127.0.0.1:{port}/metrics"
        anonymous = httpx.get(url)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
        assert "scrape-secret" not in anonymous.text
        wrong = httpx.get(url, headers={"authorization": "Bearer guess"})
        assert wrong.status_code == 401
        scraped = httpx.get(url, headers={"authorization": "Bearer scrape-secret"})
        assert scraped.status_code == 200 and "falproxy_requests" in scraped.text
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200  # unguarded


def test_metrics_token_guards_metrics_under_wsgi() -> None:
    proxy = SyncFalProxy(
        ProxyConfig(credential=FalCredential(TEST_KEY), metrics_token="scrape-secret")
    )
    try:
        refused = proxy.serve_ops("/metrics", "GET", [])
        assert refused is not None and refused.status == 401
        bearer = [(b"authorization", b"Bearer scrape-secret")]
        scraped = proxy.serve_ops("/metrics", "GET", bearer)
        assert scraped is not None and scraped.status == 200
        assert proxy.serve_ops("/elsewhere", "GET", []) is None
    finally:
        proxy.close()
