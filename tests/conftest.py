"""Live-server fixtures: uvicorn on loopback ports, the fake fal, and a secret scan; tiers.

Every live test talks to real sockets: the proxy and the fake each run in a uvicorn
server on their own 127.0.0.1 port, in a background thread with its own event loop.

Every test gets one tier marker from where it lives (registered in pyproject.toml):
``unit``, ``live``, ``contract``, ``deploy``, or ``browser`` for the tests that need
Chromium or Node's official client, wherever they live. The live modules in
:data:`CORE_LIVE_MODULES` also get ``core``: with the unit tests they are the fast loop
(``./scripts/test --fast``, which runs ``-m "unit or core"``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from falproxy import FalCredential, FalProxy, ProxyConfig
from falproxy.config import fake_mode
from falproxy.fake import create_fake_app
from tests.support.browser import browser, bundle  # noqa: F401 (shared fixtures)
from tests.support.compiled import build_description, stale_build
from tests.support.redis_support import redis_server  # noqa: F401 (a shared fixture)
from tests.support.ws_fixtures import events, fake_rt  # noqa: F401 (shared fixtures)

TESTS = Path(__file__).resolve().parent
# The tiers named by their folder under tests/.
FOLDER_TIERS = ("unit", "live", "contract", "deploy")
# Modules that drive Node's official client (the browser's mark themselves: NEEDS_BROWSER).
NODE_MODULES = frozenset({"live/test_official_client.py"})
# Live tests of the core path of a call, on both servers: the proxy end to end, the native
# protocol, the lean upstream client and its TLS trust, the HTTP and WebSocket relays (the
# HTTP one driven from WSGI too),
# attacks, hostile and faulty upstreams, aborts that must not leak. A change to
# falproxy/core, relay, client or the native server is first checked against these.
CORE_LIVE_MODULES = frozenset(
    {
        "live/test_proxy_live.py",
        "live/test_native_protocol.py",
        "live/test_lean_client.py",
        "live/test_serve_bounds.py",
        "live/test_upstream_failures.py",
        "live/test_differential.py",
        "live/test_abuse.py",
        "live/test_relay_engine.py",
        "live/test_faults.py",
        "live/test_header_bytes.py",
        "live/test_redirects.py",
        "live/test_relay_ws.py",
        "live/test_upstream_tls.py",
        "live/test_leaks.py",
        "live/test_wsgi_relay.py",
    }
)

TEST_KEY = "test-key-id:test-key-secret"
TEST_KEY_SECRET = "test-key-secret"
FAKE_SPEED = 0.05


# Every key sighting by the scanning middleware, drained by the autouse fixture below.
KEY_SIGHTINGS: list[str] = []
_SECRET = TEST_KEY_SECRET.encode()


class ScanForKey:
    """ASGI middleware: records any sighting of the key in what a served app sends out.

    Wrapped around every app the tests serve (the proxy and the fake), so every response
    head, body chunk, WebSocket frame and close reason of the whole suite is scanned, and
    so is the text of any exception escaping the app. A rolling tail catches a key split
    across two chunks.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        tail = b""

        async def scanned(message: Any) -> None:
            nonlocal tail
            seen = b"".join(_message_bytes(message))
            if _SECRET in tail + seen:
                KEY_SIGHTINGS.append(f"{scope.get('path')}: {message['type']}")
            tail = (tail + seen)[-len(_SECRET) :]
            await send(message)

        try:
            await self.app(scope, receive, scanned)
        except BaseException as exc:
            if TEST_KEY_SECRET in f"{exc!r} {exc}":
                KEY_SIGHTINGS.append(f"{scope.get('path')}: exception {type(exc).__name__}")
            raise


def _message_bytes(message: Any) -> Iterator[bytes]:
    for name, value in message.get("headers", ()):
        yield bytes(name) + b": " + bytes(value) + b"\n"
    for field_name in ("body", "bytes"):
        if message.get(field_name):
            yield bytes(message[field_name])
    for field_name in ("text", "reason", "message"):
        if isinstance(message.get(field_name), str):
            yield message[field_name].encode("utf-8", "replace")


@contextmanager
def serve(
    app: Any, *, lifespan: str = "on", scanned: bool = True, **uvicorn_options: Any
) -> Iterator[str]:
    """Serve an ASGI app on a free loopback port, scanned for the key; yields its base URL.

    ``scanned=False`` serves the app as given: the native protocol (``http=``) serves a
    FalProxy only, not the scanning middleware around it.
    """
    config = uvicorn.Config(
        ScanForKey(app) if scanned else app,
        host="127.0.0.1",
        port=0,
        lifespan=lifespan,
        log_level="warning",
        access_log=False,
        log_config=None,
        **{"proxy_headers": False, **uvicorn_options},  # as `falproxy serve` by default
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn failed to start")
        threading.Event().wait(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def fake_upstreams(fake_url: str) -> dict[str, str]:
    """Every fal host mapped to the fake at ``fake_url``, as fake mode maps them."""
    return fake_mode.fake_upstreams(fake_url)


@pytest.fixture(scope="session")
def fake_url() -> Iterator[str]:
    """The fake fal on its own port, accepting only TEST_KEY."""
    with serve(create_fake_app(speed=FAKE_SPEED, expected_key=TEST_KEY)) as url:
        yield url


@pytest.fixture
def fake(fake_url: str) -> Iterator[httpx.Client]:
    """A client for the fake's introspection endpoints, its HTTP and realtime history reset."""
    with httpx.Client(base_url=fake_url) as client:
        client.post("/__fake__/reset").raise_for_status()
        client.post("/__fake__/realtime/reset").raise_for_status()
        yield client


def proxy_config(fake_url: str, **overrides: Any) -> ProxyConfig:
    settings: dict[str, Any] = {
        "credential": FalCredential(TEST_KEY),
        "upstreams": fake_upstreams(fake_url),
        **overrides,
    }
    return ProxyConfig(**settings)


@pytest.fixture(scope="session")
def proxy_url(fake_url: str) -> Iterator[str]:
    """falproxy with default policy, in front of the fake."""
    with serve(FalProxy(proxy_config(fake_url, upstream_timeout=5.0))) as url:
        yield url


@pytest.fixture
def client(proxy_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy_url, timeout=30) as http:
        yield http


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_configure(config: pytest.Config) -> None:
    # Checked before any test runs (the imports above may have loaded a stale build).
    stale = stale_build()
    if stale is not None:
        raise pytest.UsageError(stale)


def pytest_report_header() -> str:
    return build_description()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test its tier marker, and the core live tests ``core``."""
    for item in items:
        where = item.path.resolve().relative_to(TESTS).as_posix()
        folder = where.partition("/")[0]
        if item.get_closest_marker("browser") is None and where in NODE_MODULES:
            item.add_marker(pytest.mark.browser)
        if item.get_closest_marker("browser") is None and folder in FOLDER_TIERS:
            item.add_marker(getattr(pytest.mark, folder))
        if where in CORE_LIVE_MODULES and item.get_closest_marker("live") is not None:
            item.add_marker(pytest.mark.core)


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture(autouse=True)
def no_key_in_logs() -> Iterator[_Collector]:
    """Every log line of every test is scanned for the key."""
    collector = _Collector()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        root.setLevel(previous)
    leaked = [line for line in collector.lines if TEST_KEY_SECRET in line]
    assert not leaked, "the fal key appeared in a log line"
    sightings = KEY_SIGHTINGS.copy()
    KEY_SIGHTINGS.clear()
    assert not sightings, f"the fal key was sent to a client: {sightings}"
