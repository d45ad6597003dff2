"""Reading a WSGI request body: chunk by chunk, capped, within its timeouts.

WSGI gives the application a blocking ``read()``; the only way to bound how long it blocks
is the client socket's timeout, which gunicorn and Werkzeug's server expose in the
environ. Each read waits at most the per-chunk timeout and never past the whole-body
deadline, so a stalled or dripping upload cannot hold a server thread. A body that ends
before its ``Content-Length`` (the client stopped sending) is a 400, never a short request
forwarded as if complete.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Protocol

from falproxy.core.body import BodyClock
from falproxy.core.errors import BadRequest, PayloadTooLarge, RequestTimeout
from falproxy.core.lifecycle import CallRecord

# How much of the request body is read at a time.
READ_CHUNK = 64 * 1024
SHORT_BODY_DETAIL = "The request body ended before its Content-Length"
DEADLINE_DETAIL = "The request body was not received within FALPROXY_BODY_DEADLINE"


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
    try:
        while remaining is None or remaining > 0:
            size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
            chunk = _read_one(body, size, clock, sock)
            if not chunk:
                if remaining is not None:
                    raise BadRequest(SHORT_BODY_DETAIL, headers={"connection": "close"})
                return
            record.bytes_up += len(chunk)
            if record.bytes_up > max_bytes:
                raise PayloadTooLarge(headers={"connection": "close"})
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk
    finally:
        if sock is not None:
            sock.settimeout(previous)


def _read_one(body: Readable, size: int, clock: BodyClock, sock: socket.socket | None) -> bytes:
    wait = clock.next_wait(time.monotonic())
    if wait <= 0:
        raise RequestTimeout(DEADLINE_DETAIL, headers={"connection": "close"})
    if sock is not None:
        sock.settimeout(wait)
    try:
        return body.read(size)
    except TimeoutError:
        late = clock.next_wait(time.monotonic()) <= 0
        detail = DEADLINE_DETAIL if late else None
        raise RequestTimeout(detail, headers={"connection": "close"}) from None
    except Exception:  # the server's own "client disconnected" (Werkzeug), a reset socket
        raise BadRequest(SHORT_BODY_DETAIL, headers={"connection": "close"}) from None


def read_all(
    body: Readable, max_bytes: int, record: CallRecord, clock: BodyClock,
    sock: socket.socket | None,
) -> bytes:
    """The whole (small) body, for the token-minting request the proxy must inspect."""
    return b"".join(read_chunks(body, max_bytes, record, None, clock, sock))
