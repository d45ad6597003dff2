"""``/readyz``: draining and registered checks make it 503; ``/healthz`` stays liveness."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import httpx
import pytest

from falproxy import FalProxy
from falproxy.ops import readiness as readiness_module
from falproxy.ops.readiness import CHECK_TIMEOUT_SECONDS
from falproxy.ops.shutdown import chain_drain_on_exit_signals
from tests.conftest import proxy_config, serve
from tests.support.redis_support import running_redis


@pytest.fixture
def proxy(fake_url: str) -> FalProxy:
    return FalProxy(proxy_config(fake_url))


@pytest.fixture
def base(proxy: FalProxy) -> Iterator[str]:
    with serve(proxy) as url:
        yield url


def test_ready_by_default(base: str) -> None:
    response = httpx.get(f"{base}/readyz")
    assert (response.status_code, response.json()) == (200, {"status": "ready"})


def test_draining_is_not_ready_but_alive(proxy: FalProxy, base: str) -> None:
    proxy.readiness.begin_drain()
    response = httpx.get(f"{base}/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not ready", "failing": ["draining"]}
    assert httpx.get(f"{base}/healthz").status_code == 200


async def _fails() -> bool:
    return False


async def _raises() -> bool:
    raise ConnectionError("redis down")


async def _hangs() -> bool:
    await asyncio.sleep(3600)
    return True


async def _passes() -> bool:
    return True


def test_failing_raising_and_hanging_checks_are_named(proxy: FalProxy, base: str) -> None:
    proxy.add_readiness_check("passes", _passes)
    proxy.add_readiness_check("false", _fails)
    proxy.add_readiness_check("raises", _raises)
    proxy.add_readiness_check("hangs", _hangs)
    response = httpx.get(f"{base}/readyz", timeout=CHECK_TIMEOUT_SECONDS + 10)
    assert response.status_code == 503
    assert response.json()["failing"] == ["false", "raises", "hangs"]
    assert httpx.get(f"{base}/healthz").status_code == 200


async def _redis_ping(port: int) -> bool:
    """What the Redis rate limiter registers: a PING answered with PONG."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"PING\r\n")
        await writer.drain()
        return await reader.readline() == b"+PONG\r\n"
    finally:
        writer.close()


def test_required_redis_unreachable_is_not_ready(proxy: FalProxy, base: str) -> None:
    with running_redis() as redis:
        proxy.add_readiness_check("redis", lambda: _redis_ping(redis.port))
        assert httpx.get(f"{base}/readyz").status_code == 200
        redis.stop()
        response = httpx.get(f"{base}/readyz")
    assert (response.status_code, response.json()["failing"]) == (503, ["redis"])


def test_exit_signal_marks_the_process_draining(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler chained in front of uvicorn's drains first, then runs uvicorn's."""
    monkeypatch.setattr(readiness_module, "_process_draining", readiness_module.threading.Event())
    seen: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        signal.signal(signal.SIGTERM, lambda sig, frame: seen.append(sig))
        assert chain_drain_on_exit_signals()
        assert not readiness_module.Readiness().draining
        signal.raise_signal(signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        assert readiness_module.Readiness().draining
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
