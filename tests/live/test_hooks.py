"""Every hook kind, live over sockets: order, short-circuit, per-tenant keys, events."""

from __future__ import annotations

import json

import httpx
import pytest

from falproxy import FalCredential, Identity, ProxyEvent, RateLimited, Reply, RequestContext
from falproxy.core.hooks import emit
from tests.conftest import TEST_KEY
from tests.support.hook_support import FLUX, SCHNELL, live_proxy, run
from tests.support.live import wait_until


def header_identity(name: str, calls: list[str]) -> object:
    """An authenticate hook that trusts an `x-user` header (for tests only)."""

    async def hook(context: RequestContext) -> Identity | None:
        calls.append(name)
        user = context.header("x-user")
        return Identity(user, claims={"plan": context.header("x-plan") or "free"}) if user else None

    return hook


def test_authenticate_hooks_run_in_order_first_identity_wins(fake_url: str) -> None:
    calls: list[str] = []
    events: list[ProxyEvent] = []

    async def never(context: RequestContext) -> Identity | None:
        calls.append("never")
        return None

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    first = header_identity("first", calls)
    second = header_identity("second", calls)
    hooks = (never, first, second)
    with live_proxy(fake_url, authenticate=hooks, on_event=(record,)) as client:
        assert run(client, **{"x-user": "alice"}).status_code == 200
        assert calls == ["never", "first"]  # the second hook is never asked
        refused = run(client)  # no identity, and anonymous calls are not allowed
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
    wait_until(lambda: len(events) == 2)
    by_status = {event.status: event for event in events}  # events finish in any order
    assert by_status[200].identity == "alice" and by_status[200].outcome == "ok"
    assert by_status[401].identity is None and by_status[401].outcome == "refused"


def test_before_request_short_circuits_and_blocks_expensive_endpoint(
    fake_url: str, fake: httpx.Client
) -> None:
    order: list[str] = []

    async def block_schnell_for_free_users(context: RequestContext) -> Reply | None:
        order.append("block")
        plan = context.identity.claims.get("plan") if context.identity else None
        if context.app_id == "fal-ai/flux/schnell" and plan != "pro":
            return Reply(402, {"detail": "upgrade to pro"}, headers={"x-upgrade": "pro"})
        return None

    async def later(context: RequestContext) -> Reply | None:
        order.append("later")
        return None

    auth = (header_identity("h", []),)
    before = (block_schnell_for_free_users, later)
    with live_proxy(fake_url, authenticate=auth, before_request=before) as client:
        blocked = run(client, SCHNELL, **{"x-user": "bob"})
        assert blocked.status_code == 402
        assert blocked.json() == {"detail": "upgrade to pro"}
        assert blocked.headers["x-upgrade"] == "pro"
        assert order == ["block"]  # short-circuit: later hooks skipped
        assert fake.get("/__fake__/stats").json()["requests"] == 0  # fal never called
        allowed = run(client, SCHNELL, **{"x-user": "carol", "x-plan": "pro"})
        assert allowed.status_code == 200
        assert order == ["block", "block", "later"]
        assert run(client, FLUX, **{"x-user": "bob"}).status_code == 200


def test_resolve_key_per_tenant(fake_url: str) -> None:
    """The default key is wrong for the fake; only the tenant's resolved key works."""

    async def tenant_key(context: RequestContext) -> FalCredential | None:
        if context.identity and context.identity.id == "acme":
            return FalCredential(TEST_KEY)
        return None

    async def no_key(context: RequestContext) -> FalCredential | None:
        return None

    wrong = FalCredential("someone-else:not-the-key")
    auth = (header_identity("h", []),)
    settings = {"credential": wrong, "authenticate": auth, "resolve_key": (no_key, tenant_key)}
    with live_proxy(fake_url, **settings) as client:
        assert run(client, **{"x-user": "acme"}).status_code == 200
        assert run(client, **{"x-user": "globex"}).status_code == 401  # fal refused the default


def test_hook_raising_proxy_error_is_a_json_answer(fake_url: str) -> None:
    from falproxy import EndpointNotAllowed

    async def deny(context: RequestContext) -> Reply | None:
        raise EndpointNotAllowed("not for you")

    with live_proxy(fake_url, before_request=(deny,), allow_anonymous=True) as client:
        response = run(client)
        assert response.status_code == 403
        assert response.json() == {"detail": "not for you"}


def test_on_event_all_hooks_run_even_when_one_fails(fake_url: str, no_key_in_logs: object) -> None:
    seen: list[ProxyEvent] = []

    async def broken(event: ProxyEvent) -> None:
        raise RuntimeError("analytics sink down")

    async def sink(event: ProxyEvent) -> None:
        seen.append(event)

    with live_proxy(fake_url, on_event=(broken, sink), allow_anonymous=True) as client:
        response = run(client)
        assert response.status_code == 200
        wait_until(lambda: seen)
    event = seen[0]
    assert event.app_id == "fal-ai/flux/dev" and event.status == 200 and event.outcome == "ok"
    assert event.request_id == response.headers["x-fal-request-id"]
    assert event.bytes_up == len(b'{"prompt":"a fox"}') and event.bytes_down == len(
        response.content
    )
    assert event.first_byte_seconds is not None
    assert event.first_byte_seconds <= event.duration_seconds
    lines = no_key_in_logs.lines  # type: ignore[attr-defined]
    assert any("RuntimeError" in line for line in lines)
    assert not any("analytics sink down" in line for line in lines)


def test_json_access_log(fake_url: str, no_key_in_logs: object) -> None:
    with live_proxy(fake_url, access_log_format="json", allow_anonymous=True) as client:
        response = run(client)
        lines = no_key_in_logs.lines  # type: ignore[attr-defined]
        wait_until(lambda: any(line.startswith('{"') for line in lines))
    record = json.loads(next(line for line in lines if line.startswith('{"')))
    assert record["app_id"] == "fal-ai/flux/dev"
    assert record["status"] == 200 and record["outcome"] == "ok" and record["kind"] == "http"
    assert record["request_id"] == response.headers["x-fal-request-id"]


async def test_emit_without_hooks_is_a_no_op() -> None:
    event = ProxyEvent(kind="http", method="GET", app_id=None, status=200, outcome="ok")
    await emit((), event)


async def test_websocket_handshake_runs_the_same_admission() -> None:
    """The WebSocket relay runs the same Gate with its handshake scope: same hooks."""
    from falproxy import FalProxy, ProxyConfig, RateLimit, Unauthorized
    from falproxy.core.targets import parse_target

    seen: list[tuple[str, str | None]] = []

    async def before(context: RequestContext) -> Reply | None:
        seen.append((context.method, context.identity.id if context.identity else None))
        return None

    async def tenant_key(context: RequestContext) -> FalCredential | None:
        return FalCredential("tenant-id:tenant-secret")

    config = ProxyConfig(
        credential=FalCredential("id:secret"),
        auth_tokens=("ws-token",),
        before_request=(before,),
        resolve_key=(tenant_key,),
        rate_limits=(RateLimit("1/minute"),),
    )
    proxy = FalProxy(config)
    target = parse_target("wss://ws.fal.run/fal-ai/fast-lcm-diffusion", scheme="wss")
    scope = {
        "type": "websocket",
        "path": "/api/fal/proxy",
        "headers": [(b"authorization", b"Bearer ws-token")],
        "client": ("127.0.0.1", 5000),
    }
    admission = await proxy.pipeline.gate.admit(scope, target, "fal-ai/fast-lcm-diffusion")
    assert admission.reply is None and admission.identity is not None
    assert admission.identity.id == "token-1"
    assert admission.authorization == b"Key tenant-id:tenant-secret"
    assert seen == [("WEBSOCKET", "token-1")]
    with pytest.raises(RateLimited):
        await proxy.pipeline.gate.admit(scope, target, "fal-ai/fast-lcm-diffusion")
    with pytest.raises(Unauthorized):
        anonymous = dict(scope, headers=[])
        await proxy.pipeline.gate.admit(anonymous, target, "fal-ai/fast-lcm-diffusion")
    await proxy.aclose()


def test_a_crashing_hook_refuses_with_500_and_logs_only_its_type(
    fake_url: str, no_key_in_logs: object
) -> None:
    async def buggy(context: RequestContext) -> Identity | None:
        raise KeyError("session-secret-value")

    with live_proxy(fake_url, authenticate=(buggy,)) as client:
        response = run(client)
        assert response.status_code == 500
        assert response.json() == {"detail": "The proxy could not check this call"}
    lines = no_key_in_logs.lines  # type: ignore[attr-defined]
    assert any("hook failed" in line and "KeyError" in line for line in lines)
    assert not any("session-secret-value" in line for line in lines)
