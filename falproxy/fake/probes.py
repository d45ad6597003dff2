"""``fal.run`` scenarios for testing a proxy's plumbing rather than a model.

``fake/echo`` shows what arrived, ``fake/redirect`` checks that redirects are not followed,
``fake/stall`` and ``fake/slow-stream`` exercise timeouts and disconnects, ``fake/bytes`` moves
volume, ``fake/status/{code}`` returns any status. Their timings are *not* scaled by speed:
the caller asked for exact seconds.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .context import FakeContext
from .errors import detail
from .ids import EndpointId
from .redact import safe_headers, safe_query
from .streaming import SSE_HEADERS, TrackedStream, sleep_unless_gone, sse_event

REDIRECT_TARGET = "https://example.com/elsewhere"
CHUNK_SIZE = 64 * 1024
MAX_BYTES = 1 << 31
BODYLESS_STATUSES = frozenset({204, 205, 304})

Probe = Callable[[FakeContext, Request, EndpointId], Awaitable[Response]]


def _number(request: Request, name: str, default: float, high: float) -> float:
    """A finite query parameter within ``0..high``, else 400."""
    raw = request.query_params.get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= high:
        raise detail(400, f"Query parameter {name!r} must be a number within 0..{high:g}")
    return value


async def echo(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """What the fake received, credentials masked."""
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": safe_query(request.url.query),
            "headers": safe_headers(request.headers),
            "body": body.decode("utf-8", errors="replace"),
            "authorized": True,
        }
    )


async def redirect(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """A 302 elsewhere; a proxy must relay it, never follow it with the key."""
    body = {"detail": "Moved", "location": REDIRECT_TARGET}
    return JSONResponse(body, 302, headers={"location": REDIRECT_TARGET})


async def stall(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """Sleep ``seconds`` (default 30) before any header; gives up early if the client leaves."""
    seconds = _number(request, "seconds", 30.0, 3600.0)
    await request.body()
    gone = await sleep_unless_gone(request, seconds)
    return JSONResponse({"stalled_seconds": seconds, "client_left": gone})


async def _ticks(events: int, interval: float) -> AsyncGenerator[bytes, None]:
    for index in range(events):
        if index:
            await anyio.sleep(interval)
        yield sse_event({"i": index})


async def slow_stream(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """SSE of ``events`` (default 5) ``{"i": k}`` events, ``interval`` seconds apart (default 1)."""
    events = int(_number(request, "events", 5, 100_000))
    interval = _number(request, "interval", 1.0, 3600.0)
    chunks = _ticks(events, interval)
    return TrackedStream(chunks, ctx.stats, media_type="text/event-stream", headers=SSE_HEADERS)


async def _blocks(size: int) -> AsyncGenerator[bytes, None]:
    block = bytes(range(256)) * (CHUNK_SIZE // 256)
    for start in range(0, size, CHUNK_SIZE):
        yield block[: min(CHUNK_SIZE, size - start)]
        await anyio.sleep(0)  # let the disconnect watcher run between chunks


async def octets(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """``size`` bytes (default 1 MiB) of a repeating 0..255 pattern, in 64 KiB chunks."""
    size = int(_number(request, "size", 1 << 20, MAX_BYTES))
    headers = {"content-length": str(size)}
    media = "application/octet-stream"
    return TrackedStream(_blocks(size), ctx.stats, media_type=media, headers=headers)


async def status(ctx: FakeContext, request: Request, endpoint: EndpointId) -> Response:
    """Answer ``fake/status/{code}`` with that status."""
    code = int(endpoint.path) if endpoint.path.isdigit() else 0
    if not 200 <= code <= 599:
        raise detail(400, "Use fake/status/{code} with a code within 200..599")
    if code in BODYLESS_STATUSES:
        return Response(status_code=code)
    return JSONResponse({"detail": "fake status"}, code)


PROBES: dict[str, Probe] = {
    "echo": echo,
    "redirect": redirect,
    "stall": stall,
    "slow-stream": slow_stream,
    "bytes": octets,
    "status": status,
}
