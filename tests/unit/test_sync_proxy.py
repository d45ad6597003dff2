"""The sync pipeline's own rules: WSGI headers, refusals before any I/O, closing the body."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx

from falproxy.wsgi.environ import environ_headers
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import TEST_KEY_SECRET, proxy_config


def test_environ_headers() -> None:
    environ = {
        "HTTP_X_FAL_TARGET_URL": "https://fal.run/a/b",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "REQUEST_METHOD": "POST",
        "wsgi.input": io.BytesIO(),
    }
    assert sorted(environ_headers(environ)) == [
        (b"content-type", b"application/json"),
        (b"x-fal-target-url", b"https://fal.run/a/b"),
    ]


def test_refusals_never_reach_the_upstream(fake_url: str, fake: httpx.Client) -> None:
    proxy = SyncFalProxy(proxy_config(fake_url, allowed_endpoints=("fal-ai/flux/**",)))
    cases = [
        ("POST", [(b"x-fal-target-url", b"https://fal.run/other/app")], 403),
        ("POST", [(b"x-fal-target-url", b"https://evil.example/a/b")], 412),
        ("POST", [], 400),
        ("PATCH", [(b"x-fal-target-url", b"https://fal.run/fal-ai/flux/dev")], 405),
    ]
    for method, headers, status in cases:
        reply = proxy.call(method, headers, io.BytesIO())
        assert reply.status == status
        assert b"detail" in b"".join(reply.body)
    assert fake.get("/__fake__/stats").json()["requests"] == 0
    proxy.close()


def test_body_over_cap_is_413(fake_url: str) -> None:
    proxy = SyncFalProxy(proxy_config(fake_url, max_body_bytes=10))
    headers = [
        (b"x-fal-target-url", b"https://fal.run/fake/echo"),
        (b"content-type", b"application/json"),
        (b"transfer-encoding", b"chunked"),
    ]
    reply = proxy.call("POST", headers, io.BytesIO(b"[" + b"1," * 20 + b"1]"))
    assert reply.status == 413
    proxy.close()


def test_closing_an_unread_body_closes_the_upstream(
    fake_url: str, fake: httpx.Client, no_key_in_logs: Any
) -> None:
    proxy = SyncFalProxy(proxy_config(fake_url))
    headers = [
        (b"x-fal-target-url", b"https://fal.run/fake/slow-stream?events=100&interval=0.1"),
        (b"content-type", b"application/json"),
        (b"content-length", b"2"),
    ]
    reply = proxy.call("POST", headers, io.BytesIO(b"{}"))
    assert reply.status == 200
    assert all(TEST_KEY_SECRET not in value for _, value in reply.headers)
    assert fake.get("/__fake__/stats").json()["open_streams"] == 1
    reply.body.close()  # type: ignore[attr-defined]  # a server closing before iterating
    end = time.monotonic() + 5
    while fake.get("/__fake__/stats").json()["open_streams"] and time.monotonic() < end:
        time.sleep(0.05)
    assert fake.get("/__fake__/stats").json()["open_streams"] == 0
    access = [line for line in no_key_in_logs.lines if "outcome=" in line]
    assert len(access) == 1
    assert "app=fake/slow-stream status=200 outcome=client_gone" in access[0]
    proxy.close()


def test_token_minting_is_policed(fake_url: str) -> None:
    proxy = SyncFalProxy(
        proxy_config(fake_url, allowed_endpoints=("fal-ai/fast-lcm-diffusion/**",))
    )
    headers = [
        (b"x-fal-target-url", b"https://rest.fal.ai/tokens/"),
        (b"content-type", b"application/json"),
    ]

    def mint(apps: object, method: str = "POST") -> tuple[int, bytes]:
        raw = json.dumps({"allowed_apps": apps, "token_expiration": 60}).encode()
        sized = [*headers, (b"content-length", str(len(raw)).encode())]
        reply = proxy.call(method, sized, io.BytesIO(raw))
        try:
            return reply.status, b"".join(reply.body)
        finally:
            getattr(reply.body, "close", lambda: None)()

    status, token = mint(["fast-lcm-diffusion"])
    assert status == 200
    assert json.loads(token).count(".") == 2
    assert mint(["flux"])[0] == 403
    assert mint("fast-lcm-diffusion")[0] == 400
    assert mint(["fast-lcm-diffusion"], method="PUT")[0] == 405
    proxy.close()


def test_sync_calls_run_the_same_admission_as_asgi(fake_url: str, fake: httpx.Client) -> None:
    """Auth, before_request, rate limits and on_event apply to Flask and Django too."""
    from falproxy.core.events import ProxyEvent
    from falproxy.core.hooks import Reply, RequestContext
    from falproxy.core.rate_rules import parse_rate_limits

    events: list[ProxyEvent] = []

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    async def no_pro_models(context: RequestContext) -> Reply | None:
        if context.app_id and context.app_id.endswith("/pro"):
            return Reply(403, {"detail": "pro models are for paying users"})
        return None

    proxy = SyncFalProxy(
        proxy_config(
            fake_url,
            auth_tokens=("sync-token",),
            rate_limits=parse_rate_limits("2/minute"),
            before_request=(no_pro_models,),
            on_event=(record,),
        )
    )
    target = [(b"x-fal-target-url", b"https://fal.run/fake/echo")]
    bearer = [(b"authorization", b"Bearer sync-token")]
    client = ("127.0.0.1", 5000)
    assert proxy.call("GET", target, io.BytesIO(), client=client).status == 401
    pro = [(b"x-fal-target-url", b"https://fal.run/fal-ai/flux/pro"), *bearer]
    refused = proxy.call("GET", pro, io.BytesIO(), client=client)
    assert (refused.status, b"".join(refused.body)) == (
        403,
        b'{"detail": "pro models are for paying users"}',
    )
    for _ in range(2):
        reply = proxy.call("GET", target + bearer, io.BytesIO(), client=client)
        assert reply.status == 200
        echoed = json.loads(b"".join(reply.body))
        assert echoed["headers"]["authorization"] == "Key ***"  # the server key, not the bearer
        reply.body.close()  # type: ignore[attr-defined]
    assert proxy.call("GET", target + bearer, io.BytesIO(), client=client).status == 429
    proxy.close()
    assert [(e.status, e.outcome, e.identity) for e in events] == [
        (401, "refused", None),
        (403, "refused", "token-1"),
        (200, "ok", "token-1"),
        (200, "ok", "token-1"),
        (429, "limited", "token-1"),
    ]
