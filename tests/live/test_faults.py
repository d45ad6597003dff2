"""Fault injection: every way an upstream or a client breaks, over real sockets.

Each case must end in the right status (502/504) or a clean close of the client's
connection, exactly one access event with the right outcome, no upstream connection left
open, and a proxy that keeps serving.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from falproxy import FalProxy
from falproxy.ops.gauges import OPEN_UPSTREAM_RESPONSES
from tests.conftest import TEST_KEY, serve
from tests.support.faulty_upstream import FaultyUpstream, closed_port
from tests.support.live import ROUTE, EventLog, capture_events, head, open_socket, wait_until

JSON = {"content-type": "application/json"}
UPSTREAM_TIMEOUT = 1.5
IDLE_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0


def _config(upstream: str, **overrides: object) -> object:
    from falproxy import FalCredential, ProxyConfig

    settings: dict[str, object] = {
        "credential": FalCredential(TEST_KEY),
        "upstreams": {"fal.run": upstream},
        "upstream_timeout": UPSTREAM_TIMEOUT,
        "stream_idle_timeout": IDLE_TIMEOUT,
        "body_timeout": BODY_TIMEOUT,
        **overrides,
    }
    return ProxyConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def faulty() -> Iterator[FaultyUpstream]:
    with FaultyUpstream().running() as server:
        yield server


@pytest.fixture(scope="module")
def proxy(faulty: FaultyUpstream) -> Iterator[str]:
    with serve(FalProxy(_config(faulty.url))) as url:  # type: ignore[arg-type]
        yield url


@pytest.fixture
def events() -> Iterator[EventLog]:
    with capture_events() as log:
        yield log


def call(proxy: str, fault: str, timeout: float = 15.0) -> httpx.Response:
    return httpx.post(
        proxy + ROUTE,
        headers={"x-fal-target-url": f"https://fal.run/{fault}/app", **JSON},
        json={"n": 1},
        timeout=timeout,
    )


def assert_still_serving(proxy: str, faulty: FaultyUpstream) -> None:
    """The proxy answers the next call, and holds no upstream response open."""
    response = call(proxy, "ok")
    assert response.status_code == 200 and response.json() == {"ok": True}
    wait_until(lambda: OPEN_UPSTREAM_RESPONSES.value == 0)


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ("reset-before-headers", 502),
        ("close-before-headers", 502),
        ("malformed", 502),
        ("oversized-headers", 502),
        ("stall-before-headers", 504),
    ],
)
def test_upstream_fault_before_headers_is_an_error_status(
    proxy: str, faulty: FaultyUpstream, events: EventLog, fault: str, status: int
) -> None:
    started = time.monotonic()
    response = call(proxy, fault)
    assert response.status_code == status
    assert response.json()["detail"]
    assert time.monotonic() - started < UPSTREAM_TIMEOUT + 5
    assert events.wait_for(f"{fault}/app") == (str(status), "upstream_error")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_refused_connection_is_502(events: EventLog) -> None:
    with serve(FalProxy(_config(f"http://127.0.0.1:{closed_port()}"))) as url:  # type: ignore[arg-type]
        response = call(url, "refused")
        assert response.status_code == 502
        assert events.wait_for("refused/app") == ("502", "upstream_error")
        assert call(url, "refused-again").status_code == 502


@pytest.mark.parametrize("fault", ["reset-mid-body", "short-body", "bad-chunk", "stall-mid-stream"])
def test_upstream_fault_mid_body_truncates_the_response(
    proxy: str, faulty: FaultyUpstream, events: EventLog, fault: str
) -> None:
    """Headers already went out: the client must see a broken body, never a complete one."""
    with pytest.raises(httpx.RemoteProtocolError):
        call(proxy, fault)
    assert events.wait_for(f"{fault}/app") == ("200", "upstream_error")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_never_ending_stream_is_closed_when_the_client_leaves(
    proxy: str, faulty: FaultyUpstream, events: EventLog
) -> None:
    received = 0
    with httpx.stream(
        "POST",
        proxy + ROUTE,
        headers={"x-fal-target-url": "https://fal.run/never-ending/app", **JSON},
        json={},
        timeout=15,
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            received += len(chunk)
            if received > 512 * 1024:
                break
    assert events.wait_for("never-ending/app") == ("200", "client_gone")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_client_abort_before_response_headers(
    proxy: str, faulty: FaultyUpstream, events: EventLog
) -> None:
    with open_socket(proxy) as sock:
        sock.sendall(head("GET", "https://fal.run/stall-before-headers/early"))
        wait_until(lambda: faulty.open_connections == 1)
    # Closed long before the proxy's own 1.5 s header timeout would fire.
    assert events.wait_for("stall-before-headers/early") == ("-", "client_gone")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_client_abort_mid_upload(proxy: str, faulty: FaultyUpstream, events: EventLog) -> None:
    with open_socket(proxy) as sock:
        request = head(
            "POST",
            "https://fal.run/ok/upload",
            "content-type: application/json",
            "content-length: 100000",
            # Past the 64 KiB the proxy reads before calling fal, so the upload is under way.
            body=b'{"a": "' + b"x" * 70_000,
        )
        sock.sendall(request)
        wait_until(lambda: faulty.open_connections == 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert events.wait_for("ok/upload") == ("-", "client_gone")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_client_abort_mid_response(proxy: str, faulty: FaultyUpstream, events: EventLog) -> None:
    with open_socket(proxy) as sock:
        sock.sendall(head("GET", "https://fal.run/stall-mid-stream/mid"))
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    assert events.wait_for("stall-mid-stream/mid") == ("200", "client_gone")
    wait_until(lambda: faulty.open_connections == 0)
    assert_still_serving(proxy, faulty)


def test_slow_drip_body_times_out_with_408(
    proxy: str, faulty: FaultyUpstream, events: EventLog
) -> None:
    with open_socket(proxy) as sock:
        sock.sendall(
            head(
                "POST",
                "https://fal.run/ok/drip",
                "content-type: application/json",
                "content-length: 1000",
                body=b'{"a": "',
            )
        )
        started = time.monotonic()
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"detail"' in answer
    assert time.monotonic() - started < BODY_TIMEOUT + 5
    assert events.wait_for("ok/drip") == ("408", "refused")
    # A body that stalls within the first 64 KiB is refused before fal is called at all.
    assert not any("/ok/drip" in line for line in faulty.requests)
    assert_still_serving(proxy, faulty)
