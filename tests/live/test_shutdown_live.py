"""SIGTERM to a real ``falproxy serve`` during a stream: it finishes, then the process exits 0."""

from __future__ import annotations

import signal
import time

import httpx
import pytest

from tests.support.procs import falproxy_serve, free_port, proxy_env

ROUTE = "/api/fal/proxy"
SSE = {"content-type": "application/json"}


def stream_url(events: int, interval: float) -> str:
    return f"https://fal.run/fake/slow-stream?events={events}&interval={interval}"


def read_events_after_sigterm(base: str, url: str, process: object) -> tuple[list[str], bool]:
    """Stream ``url``; SIGTERM ``process`` after the first event. Data lines, and clean end."""
    events: list[str] = []
    headers = {**SSE, "x-fal-target-url": url}
    try:
        with httpx.stream("POST", f"{base}{ROUTE}", headers=headers, json={}, timeout=30) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data:"):
                    events.append(line)
                    if len(events) == 1:
                        process.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    except httpx.RemoteProtocolError:
        return events, False
    return events, True


@pytest.mark.parametrize("workers", [1, 2])
def test_stream_in_flight_at_sigterm_finishes_and_exit_is_0(fake_url: str, workers: int) -> None:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_SHUTDOWN_GRACE="20")
    with falproxy_serve(env, port, "--workers", str(workers)) as served:
        process = served.process
        started = time.monotonic()
        events, clean = read_events_after_sigterm(
            f"http://127.0.0.1:{port}", stream_url(6, 0.4), process
        )
        assert clean and len(events) == 6
        assert process.wait(timeout=20) == 0
        assert time.monotonic() - started < 20
        assert "Traceback" not in served.stderr()
    # Stopped accepting: the port is closed once the process is gone.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_stream_longer_than_the_grace_is_closed_and_exit_is_still_0(fake_url: str) -> None:
    port = free_port()
    env = proxy_env(fake_url, FALPROXY_SHUTDOWN_GRACE="1")
    with falproxy_serve(env, port) as served:
        process = served.process
        started = time.monotonic()
        events, clean = read_events_after_sigterm(
            f"http://127.0.0.1:{port}", stream_url(100, 0.5), process
        )
        assert process.wait(timeout=20) == 0
        elapsed = time.monotonic() - started
    assert not clean and 1 <= len(events) < 100
    assert elapsed < 10, "the grace period bounds the drain"
