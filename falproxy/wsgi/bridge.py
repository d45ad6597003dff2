"""The WSGI adapter's private event loop: one long-lived loop in a daemon thread.

Hooks, the rate limiter and its Redis client, and the relay's upstream client (its pooled
connections) are async and bound to the loop they first ran on, so a WSGI adapter must not
create a loop per request (``asyncio.run``): every call is handed to one long-lived loop
in a daemon thread, and the WSGI thread waits for it (:meth:`LoopThread.run`) or talks
to it through a :class:`~falproxy.wsgi.handoff.Handoff` (:meth:`LoopThread.submit`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """One event loop in a daemon thread, started on first use."""

    def __init__(self, name: str = "falproxy-loop") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started now if it was not)."""
        return self._started()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop thread and return its result (or raise)."""
        return self.submit(coroutine).result()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coroutine`` on the loop thread; its future settles when it ends."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._started())

    def close(self) -> None:
        """Stop and close the loop; later calls start a new one."""
        with self._lock:
            loop, self._loop = self._loop, None
            thread, self._thread = self._thread, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            loop.close()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=self._name, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop
