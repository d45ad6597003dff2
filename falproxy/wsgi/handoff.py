"""The hand-off between one WSGI request's thread and its relay on the loop thread.

One queue carries everything the relay tells the WSGI thread, in order: requests for the
next body chunk (:class:`Read`), then an :class:`~falproxy.core.answers.Answer` or a
:class:`Start` followed by body chunks and :data:`END`, and last :data:`FINISHED` when
the relay's coroutine has returned. The body is read in the WSGI thread, one chunk per
request, so the loop never holds more of an upload than the chunk it is sending.

The response side is bounded: :meth:`Handoff.send` waits while more than
:data:`WINDOW_BYTES` are queued and not yet taken by the WSGI thread, so a slow client
slows the relay (and through it the upstream connection) instead of letting the loop
buffer the whole response.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from falproxy.core.body import BodyClock
from falproxy.core.headers import Headers

T = TypeVar("T")

# Response bytes the loop may queue ahead of the WSGI thread's writes: enough to keep a
# fast client busy while the next chunk arrives, bounded for a slow one.
WINDOW_BYTES: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Read:
    """The relay wants the next body chunk (``b""`` at the end) through ``future``."""

    future: asyncio.Future[bytes]
    max_bytes: int
    clock: BodyClock


@dataclass(frozen=True, slots=True)
class Start:
    """The relayed response's status and headers; body chunks follow."""

    status: int
    headers: Headers


END: Final = "end"  # the relayed response is complete
FINISHED: Final = "finished"  # the relay's coroutine returned (or raised)


class Handoff:
    """The queue of one call, its response window, and the way back to the loop."""

    __slots__ = ("_inbox", "_lock", "_loop", "_queued", "_space")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0  # response bytes posted and not yet taken
        self._space: asyncio.Future[None] | None = None  # the relay waits here when full

    # --- the loop's side -----------------------------------------------------------------

    def post(self, message: object) -> None:
        """Hand ``message`` to the WSGI thread (from any thread)."""
        self._inbox.put(message)

    async def read(self, max_bytes: int, clock: BodyClock) -> bytes:
        """The next body chunk, read by the WSGI thread; raises what reading raised."""
        future: asyncio.Future[bytes] = self._loop.create_future()
        self._inbox.put(Read(future, max_bytes, clock))
        return await future

    async def send(self, chunk: bytes, timeout: float | None = None) -> None:
        """Queue a response chunk; wait while the window is full (TimeoutError past
        ``timeout``: the WSGI thread has stopped taking chunks)."""
        with self._lock:
            self._queued += len(chunk)
            space = None
            if self._queued > WINDOW_BYTES:
                space = self._space = self._loop.create_future()
        self._inbox.put(chunk)
        if space is not None:
            async with asyncio.timeout(timeout):
                await space

    # --- the WSGI thread's side ----------------------------------------------------------

    def take(self) -> object:
        """The next message, waiting for it; taking a chunk frees its room in the window."""
        message = self._inbox.get()
        if type(message) is bytes:
            with self._lock:
                self._queued -= len(message)
                space = self._space
                if space is not None and self._queued <= WINDOW_BYTES:
                    self._space = None
                else:
                    space = None
            if space is not None:
                self._loop.call_soon_threadsafe(_settle, space, None)
        return message

    def settle(self, read: Read, outcome: bytes | BaseException) -> None:
        """Answer ``read`` with a chunk, or with the error reading it raised."""
        self._loop.call_soon_threadsafe(_settle, read.future, outcome)

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback()`` on the loop thread."""
        self._loop.call_soon_threadsafe(callback)


def _settle(future: asyncio.Future[T], outcome: T | BaseException) -> None:
    if future.done():  # cancelled meanwhile: the relay has gone
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
