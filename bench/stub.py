"""The benchmark's Python upstream stub: the endpoints nginx cannot play.

Raw ASGI on uvicorn (no framework, so the stub costs as little as possible):
``/sse?n=N&interval=S`` sends N events S seconds apart, each carrying the stub's clock so
the client can measure how late it arrived; ``/hold`` sends one event and then keeps the
stream open and idle until the client leaves; any WebSocket path echoes every message.
The status poll, POST and the 1 GB download are served by the nginx stub instead.

Run: ``python bench/stub.py PORT``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any
from urllib.parse import parse_qs

SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx must not buffer the stream
]
HOLD_SECONDS = 600.0  # an idle held stream ends by itself after this, bounding the stub


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await echo(receive, send)
    elif scope["type"] == "http":
        query = parse_qs(scope["query_string"].decode())
        if scope["path"].endswith("/sse"):
            await sse(
                send, int(query.get("n", ["10"])[0]), float(query.get("interval", ["0.02"])[0])
            )
        elif scope["path"].endswith("/hold"):
            await hold(receive, send)
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"not found"})
    elif scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


async def sse(send: Any, events: int, interval: float) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    for index in range(events):
        if index:
            await asyncio.sleep(interval)
        data = f'data: {{"i": {index}, "t": {time.time():.6f}}}\n\n'.encode()
        await send({"type": "http.response.body", "body": data, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def hold(receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
    await send(
        {"type": "http.response.body", "body": b'data: {"held": true}\n\n', "more_body": True}
    )
    try:
        async with asyncio.timeout(HOLD_SECONDS):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        await send({"type": "http.response.body", "body": b""})


async def echo(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        else:
            return


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        backlog=8192,
        timeout_keep_alive=60,
    )
