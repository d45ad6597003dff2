"""Client-side probes that wrk cannot do: SSE timing, held streams, WebSocket echo, 1 GB.

Plain asyncio sockets speaking HTTP/1.1 (the probes must cost less than what they measure).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass


def http_get(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class SseResult:
    first_event_ms: float  # median over the runs: request written -> first event read
    lag_median_ms: float  # event stamped by the stub -> read by the client
    lag_max_ms: float
    events: int  # events received over all runs
    expected: int


async def _one_sse(
    port: int, path: str, headers: dict[str, str], events: int
) -> tuple[float, list[float]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    writer.write(http_get("127.0.0.1", port, path, headers))
    await writer.drain()
    first = None
    lags: list[float] = []
    buffer = b""
    try:
        async with asyncio.timeout(30):
            while len(lags) < events:
                data = await reader.read(65536)
                if not data:
                    break
                now = time.time()
                buffer += data
                while b"data: " in buffer:
                    _, _, rest = buffer.partition(b"data: ")
                    line, sep, after = rest.partition(b"\n")
                    if not sep:
                        break
                    buffer = after
                    if first is None:
                        first = (time.perf_counter() - started) * 1000
                    stamp = json.loads(line).get("t")
                    if stamp is not None:
                        lags.append((now - stamp) * 1000)
    finally:
        writer.close()
    return (first if first is not None else float("nan")), lags


def sse(port: int, path: str, headers: dict[str, str], *, runs: int, events: int) -> SseResult:
    async def main() -> SseResult:
        firsts: list[float] = []
        lags: list[float] = []
        for _ in range(runs):
            first, run_lags = await _one_sse(port, path, headers, events)
            firsts.append(first)
            lags.extend(run_lags)
        return SseResult(
            statistics.median(firsts),
            statistics.median(lags) if lags else float("nan"),
            max(lags) if lags else float("nan"),
            len(lags),
            runs * events,
        )

    return asyncio.run(main())


async def _open_held(port: int, path: str, headers: dict[str, str]) -> asyncio.StreamWriter | None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(http_get("127.0.0.1", port, path, headers))
        await writer.drain()
        seen = b""
        async with asyncio.timeout(30):
            while b"data: " not in seen:
                data = await reader.read(4096)
                if not data:
                    writer.close()
                    return None
                seen += data
        return writer
    except (OSError, TimeoutError):
        return None


def hold_streams(
    port: int, path: str, headers: dict[str, str], count: int, measure: object
) -> tuple[int, object]:
    """Open ``count`` SSE streams (256 at a time), call ``measure()`` while all are open."""

    async def main() -> tuple[int, object]:
        writers: list[asyncio.StreamWriter] = []
        for start in range(0, count, 256):
            batch = [_open_held(port, path, headers) for _ in range(min(256, count - start))]
            writers.extend(w for w in await asyncio.gather(*batch) if w is not None)
        await asyncio.sleep(1.0)  # let the proxy settle before reading its memory
        value = await asyncio.to_thread(measure)  # type: ignore[arg-type]
        for writer in writers:
            writer.close()
        await asyncio.sleep(0.5)
        return len(writers), value

    return asyncio.run(main())


def ws_echo(url: str, headers: dict[str, str], *, conns: int, seconds: float) -> float | None:
    """Messages per second echoed over ``conns`` sockets, each one message in flight."""
    import websockets

    async def worker(deadline: float) -> int:
        count = 0
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            while time.monotonic() < deadline:
                await ws.send("x" * 64)
                await ws.recv()
                count += 1
        return count

    async def main() -> float | None:
        started = time.monotonic()
        try:
            counts = await asyncio.gather(*(worker(started + seconds) for _ in range(conns)))
        except Exception:  # refused or closed by the proxy: no WebSocket relay here
            return None
        return sum(counts) / (time.monotonic() - started)

    return asyncio.run(main())


def download(port: int, path: str, headers: dict[str, str]) -> tuple[int, float]:
    """Read a whole (large) response; bytes of body and seconds taken."""

    async def main() -> tuple[int, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        started = time.perf_counter()
        writer.write(http_get("127.0.0.1", port, path, {**headers, "Connection": "close"}))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        chunked = b"transfer-encoding: chunked" in head.lower()
        total = 0
        async with asyncio.timeout(300):
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    break
                total += len(data)
        writer.close()
        if chunked:  # count framing bytes as body: close enough at 1 GB (a few KB)
            pass
        return total, time.perf_counter() - started

    return asyncio.run(main())
