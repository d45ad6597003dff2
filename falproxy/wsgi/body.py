"""Reading a WSGI request body: chunk by chunk, capped, within its timeouts.

WSGI gives the application a blocking ``read()``; the only handle on how long it blocks is
the client socket, which gunicorn and Werkzeug's server expose in the environ. Its timeout
bounds each pause (the per-chunk timeout: one ``recv``), and at the whole-body deadline a
timer shuts the socket's reading side, which ends a ``read()`` however steadily the client
drips, so a stalled or dripping upload cannot hold a server thread. A body that ends before
its ``Content-Length`` (the client stopped sending) is a 400, never a short request
forwarded as if complete.

Only the reading lives here: what to do with the chunks (prefetch a small body, stream a
large one, read the token-minting one whole) is the relay's, the same for every front end
(:mod:`falproxy.relay.body`), which asks the WSGI thread for one chunk at a time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Generator
from typing import Protocol

from falproxy.core.body import DEADLINE_DETAIL, BodyClock
from falproxy.core.errors import BadRequest, PayloadTooLarge, RequestTimeout

# How much of the request body is read at a time.
READ_CHUNK = 64 * 1024
SHORT_BODY_DETAIL = "The request body ended before its Content-Length"
_CLOSE = {"connection": "close"}  # the rest of the body is unread: never reuse the connection
# A failed read that took this share of its allowed wait counts as timed out.
TIMED_OUT = 0.9


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def read_chunks(
    body: Readable,
    max_bytes: int,
    length: int | None,
    clock: BodyClock,
    sock: socket.socket | None,
) -> Generator[bytes, None, None]:
    """Yield the body as it is read; 413 past ``max_bytes``, 408 past ``clock``, 400 if short.

    Without ``sock`` (a server that does not expose it) the timeouts cannot be enforced
    while a read blocks; the deadline is still checked between reads.
    """
    remaining = length
    received = 0
    previous = sock.gettimeout() if sock is not None else None
    deadline = _deadline_timer(sock, clock)
    try:
        while remaining is None or remaining > 0:
            size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            chunk = _read_one(body, size, clock, sock)
            if not chunk:
                if remaining is not None:
                    raise BadRequest(SHORT_BODY_DETAIL, headers=_CLOSE)
                return
            received += len(chunk)
            if received > max_bytes:
                raise PayloadTooLarge(headers=_CLOSE)
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        if deadline is not None:
            deadline.cancel()
        if sock is not None and not _past(clock):
            sock.settimeout(previous)


def _read_one(body: Readable, size: int, clock: BodyClock, sock: socket.socket | None) -> bytes:
    wait = clock.next_wait(time.monotonic())
    if wait <= 0:
        raise RequestTimeout(DEADLINE_DETAIL, headers=_CLOSE)
    if sock is not None:
        sock.settimeout(wait)
    started = time.monotonic()
    try:
        chunk = body.read(size)
    except Exception as exc:
        # Servers wrap a socket timeout in their own "client disconnected" error (Werkzeug),
        # so a read that failed after waiting its whole allowance is a timeout whatever its
        # type; anything sooner is the client stopping short (EOF, reset).
        if _past(clock):
            raise RequestTimeout(DEADLINE_DETAIL, headers=_CLOSE) from None
        if isinstance(exc, TimeoutError) or time.monotonic() - started >= wait * TIMED_OUT:
            raise RequestTimeout(clock.timeout_detail(wait), headers=_CLOSE) from None
        raise BadRequest(SHORT_BODY_DETAIL, headers=_CLOSE) from None
    if len(chunk) < size and _past(clock):  # the deadline timer cut the read short
        raise RequestTimeout(DEADLINE_DETAIL, headers=_CLOSE)
    return chunk


def _past(clock: BodyClock) -> bool:
    return clock.next_wait(time.monotonic()) <= 0


def _deadline_timer(sock: socket.socket | None, clock: BodyClock) -> threading.Timer | None:
    """A timer that shuts the socket's reading side when the whole-body deadline passes."""
    if sock is None:
        return None
    timer = threading.Timer(max(0.0, clock.ends - time.monotonic()), _stop_reading, (sock,))
    timer.daemon = True
    timer.start()
    return timer


def _stop_reading(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: nothing left to stop
        sock.shutdown(socket.SHUT_RD)
