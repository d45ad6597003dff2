"""An upstream that reflects the key in a response header never hands it to the client.

Issue 12 item 12. The upstream is a real server on loopback that echoes the request's
``Authorization`` (in one header as sent, in another embedded in a longer value); the
proxy must drop both headers on every path (the ASGI relay, and the WSGI relay under a
real threaded WSGI server), keep the others, and record the drop in the call's event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest

from falproxy import FalCredential, FalProxy, ProxyConfig, ProxyEvent
from falproxy.ops.logs import log_event
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import TEST_KEY, TEST_KEY_SECRET, serve
from tests.support.faulty_upstream import FaultyUpstream
from tests.support.live import ROUTE, capture_events
from tests.support.wsgi_server import serve_sync_proxy

ECHO = "https://fal.run/echo-authorization/app"
LEAKING = ("x-echo-authorization", "x-debug")


@pytest.fixture(scope="module")
def echoing() -> Iterator[FaultyUpstream]:
    with FaultyUpstream().running() as server:
        yield server


def config(upstream: str, events: list[ProxyEvent]) -> ProxyConfig:
    async def record(event: ProxyEvent) -> None:
        events.append(event)

    return ProxyConfig(
        credential=FalCredential(TEST_KEY),
        upstreams={"fal.run": upstream},
        on_event=(record,),
        allow_anonymous=True,
    )


def assert_key_withheld(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"] == "echo-1"  # other headers still relayed
    for name in LEAKING:
        assert name not in response.headers
    assert TEST_KEY_SECRET not in str(response.headers.raw)


def test_the_asgi_relay_drops_headers_carrying_the_key(echoing: FaultyUpstream) -> None:
    events: list[ProxyEvent] = []
    with (
        capture_events() as log,
        serve(FalProxy(config(echoing.url, events))) as url,
        httpx.Client(base_url=url) as client,
    ):
        assert_key_withheld(client.get(ROUTE, headers={"x-fal-target-url": ECHO}))
    assert [event.dropped_headers for event in events] == [2]
    assert any("dropped_headers=2" in line for line in log.lines)


@pytest.fixture
def quiet_httpcore() -> Iterator[None]:
    """httpcore's DEBUG lines print every upstream response head, this one's echoed key too.

    That is the upstream's doing and a debug-level library log, not what the client gets;
    it is silenced here so the suite-wide log scan judges falproxy's own lines only.
    """
    httpcore = logging.getLogger("httpcore")
    previous = httpcore.level
    httpcore.setLevel(logging.INFO)
    try:
        yield
    finally:
        httpcore.setLevel(previous)


@pytest.mark.usefixtures("quiet_httpcore")
def test_the_wsgi_relay_drops_headers_carrying_the_key(echoing: FaultyUpstream) -> None:
    events: list[ProxyEvent] = []
    with (
        serve_sync_proxy(SyncFalProxy(config(echoing.url, events))) as url,
        httpx.Client(base_url=url) as client,
    ):
        response = client.get(ROUTE, headers={"x-fal-target-url": ECHO})
        assert_key_withheld(response)
    assert [event.dropped_headers for event in events] == [2]


def test_the_access_log_shows_drops_only_when_there_are_some() -> None:
    with capture_events() as log:
        log_event(ProxyEvent("http", "GET", "a/b", 200, "ok"))
        log_event(ProxyEvent("http", "GET", "a/b", 200, "ok", dropped_headers=1))
    assert "dropped_headers" not in log.lines[0]
    assert log.lines[1].endswith(" dropped_headers=1")
