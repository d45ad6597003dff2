"""Client aborts mid-stream, many times, then count what is left open.

Used by ``test_leaks.py`` (2,000 aborts in CI) and ``bench/leak.py`` (10,000). A leaking
relay shows up three ways: the fake fal still holds open streams (counted upstream), the
proxy's ``OPEN_UPSTREAM_RESPONSES`` gauge stays above zero (counted in the proxy), and the
process's file descriptors and RSS grow with the number of aborts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from falproxy.ops.gauges import OPEN_UPSTREAM_RESPONSES
from tests.support.live import wait_until
from tests.support.proc_stats import open_fds, rss_kib

STREAM = "https://fal.run/fake/slow-stream?events=100000&interval=0.01"
CONCURRENCY = 16


@dataclass
class LeakReport:
    aborts: int
    seconds: float
    fds_before: int
    fds_after: int
    rss_before_mib: float
    rss_after_mib: float
    fake_open_streams: int
    fake_disconnected: int
    gauge_after: int


def rss_mib() -> float:
    return rss_kib() / 1024


def _request(route: str) -> bytes:
    lines = [
        f"POST {route} HTTP/1.1",
        "host: 127.0.0.1",
        f"x-fal-target-url: {STREAM}",
        "content-type: application/json",
        "content-length: 2",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n{}").encode()


async def _abort_once(port: int, data: bytes, index: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await asyncio.wait_for(reader.readuntil(b"data:"), 30)
    finally:
        if index % 2:
            writer.transport.abort()  # a reset, as when a browser tab dies
        else:
            writer.close()  # a clean FIN, as when a user navigates away
        await writer.wait_closed()


async def _abort_many(port: int, route: str, count: int, deadline: float) -> int:
    data = _request(route)
    gate = asyncio.Semaphore(CONCURRENCY)
    done = 0

    async def one(index: int) -> None:
        nonlocal done
        async with gate:
            if time.monotonic() > deadline:
                return
            await _abort_once(port, data, index)
            done += 1

    await asyncio.gather(*(one(index) for index in range(count)))
    return done


# Loggers whose per-call records the test harness keeps in memory (pytest's capture and the
# key-scan collector): silenced for the run, or they would be the "leak" being measured.
CHATTY_LOGGERS = ("httpx", "httpcore", "falproxy.access", "falproxy.relay")


@contextmanager
def quiet_per_call_logs() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in CHATTY_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_aborts(proxy_url: str, fake: httpx.Client, count: int, max_seconds: float) -> LeakReport:
    """Warm up, measure, abort ``count`` streams (bounded by ``max_seconds``), measure again."""
    with quiet_per_call_logs():
        return _run_aborts(proxy_url, fake, count, max_seconds)


def abort_streams(port: int, count: int, max_seconds: float) -> int:
    """Abort ``count`` streams through the proxy route on ``port``; how many were aborted."""
    return asyncio.run(_abort_many(port, "/api/fal/proxy", count, time.monotonic() + max_seconds))


def _run_aborts(proxy_url: str, fake: httpx.Client, count: int, max_seconds: float) -> LeakReport:
    port = int(proxy_url.rsplit(":", 1)[1])
    route = "/api/fal/proxy"
    asyncio.run(_abort_many(port, route, 300, time.monotonic() + 60))  # warm pools and caches
    _settle(fake)
    fds_before, rss_before = open_fds(), rss_mib()
    disconnected_before = fake.get("/__fake__/stats").json()["disconnected_streams"]
    started = time.monotonic()
    done = asyncio.run(_abort_many(port, route, count, started + max_seconds))
    seconds = time.monotonic() - started
    _settle(fake)
    stats = fake.get("/__fake__/stats").json()
    return LeakReport(
        aborts=done,
        seconds=seconds,
        fds_before=fds_before,
        fds_after=open_fds(),
        rss_before_mib=rss_before,
        rss_after_mib=rss_mib(),
        fake_open_streams=stats["open_streams"],
        fake_disconnected=stats["disconnected_streams"] - disconnected_before,
        gauge_after=OPEN_UPSTREAM_RESPONSES.value,
    )


def _settle(fake: httpx.Client) -> None:
    """Wait until every aborted stream has been torn down on both sides."""
    wait_until(lambda: fake.get("/__fake__/stats").json()["open_streams"] == 0, 60)
    wait_until(lambda: OPEN_UPSTREAM_RESPONSES.value == 0, 30)
