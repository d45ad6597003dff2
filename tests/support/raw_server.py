"""An asyncio TCP server on a loopback port, in its own thread: the base of the hand-written
upstreams (tests/support/faulty_upstream.py, hostile_upstream.py)."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextmanager
def serve_in_thread(
    handler: Handler, *, limit: int = 2**16, tls: ssl.SSLContext | None = None
) -> Iterator[int]:
    """Yields the port while ``handler`` serves connections; cancels them all at exit.

    ``tls``: a server context, for an HTTPS upstream (tests/support/tls.py makes one).
    """
    started = threading.Event()
    ready: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = []

    async def main() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, limit=limit, ssl=tls)
        stop = asyncio.Event()
        ready.append((asyncio.get_running_loop(), stop, server.sockets[0].getsockname()[1]))
        started.set()
        async with server:
            await stop.wait()
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    started.wait(10)
    loop, stop, port = ready[0]
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
