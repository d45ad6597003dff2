"""Reading a WSGI request body: chunk by chunk, capped, within its timeouts.

WSGI gives the application a blocking ``read()``; the only handle on how long it blocks is
the client socket, which gunicorn and Werkzeug's server expose in the environ. Its timeout
bounds each pause (the per-chunk timeout: one ``recv``), and at the whole-body deadline a
timer shuts the socket's reading side, which ends a ``read()`` however steadily the client
drips, so a stalled or dripping upload cannot hold a server thread. A body that ends before
its ``Content-Length`` (the client stopped sending) is a 400, never a short request
forwarded as if complete.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Protocol

from falproxy.core.body import DEADLINE_DETAIL, BodyClock
from falproxy.core.errors import BadRequest, PayloadTooLarge, RequestTimeout
from falproxy.core.lifecycle import CallRecord

# How much of the request body is read at a time.
READ_CHUNK = 64 * 1024
SHORT_BODY_DETAIL = "The request body ended before its Content-Length"
_CLOSE = {"connection": "close"}  # the rest of the body is unread: never reuse the connection
# A failed read that took this share of its allowed wait counts as timed out.
TIMED_OUT = 0.9
# Read this much before calling fal: a body that ends short within it is refused before
# anything is forwarded (larger bodies stream, and a short one aborts the upstream call).
PREFETCH_BYTES = 64 * 1024


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


def read_chunks(
    body: Readable,
    max_bytes: int,
    record: CallRecord,
    length: int | None,
    clock: BodyClock,
    sock: socket.socket | None,
) -> Iterator[bytes]:
    """Yield the body as it is read; 413 past ``max_bytes``, 408 past ``clock``, 400 if short.

    Without ``sock`` (a server that does not expose it) the timeouts cannot be enforced
    while a read blocks; the deadline is still checked between reads.
    """
    remaining = length
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
            record.bytes_up += len(chunk)
            if record.bytes_up > max_bytes:
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


def read_all(
    body: Readable,
    max_bytes: int,
    record: CallRecord,
    clock: BodyClock,
    sock: socket.socket | None,
) -> bytes:
    """The whole (small) body, for the token-minting request the proxy must inspect."""
    return b"".join(read_chunks(body, max_bytes, record, None, clock, sock))


def prefetched(chunks: Iterator[bytes]) -> bytes | Iterator[bytes]:
    """The whole body if it ends within :data:`PREFETCH_BYTES`, else an iterator over all of it.

    Errors while prefetching (400, 408, 413) are raised here, before the upstream call.
    """
    head: list[bytes] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= PREFETCH_BYTES:
            return itertools.chain(head, chunks)
    return b"".join(head)
