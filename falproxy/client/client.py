"""``LeanClient``: one HTTP/1.1 request at a time per connection, over a keep-alive pool.

The relay's upstream client. It sends the request head and body exactly as given (plus
``Host`` and body framing when absent), waits for the response head within the head
timeout, and hands back an :class:`UpstreamResponse` whose body is read chunk by chunk.
Failures before the response starts are ``UpstreamUnavailable`` (502) or
``UpstreamTimeout`` (504); after it, ``UpstreamBroken``. An exception raised by the
request-body iterator propagates unchanged, so the relay can answer 413, 408 or note that
the client left.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

from falproxy.client.connection import UpstreamConnection
from falproxy.client.pool import Pool
from falproxy.client.request import Target, declared_length, encode_head, parse_target
from falproxy.client.response import UpstreamResponse
from falproxy.client.settings import UpstreamSettings
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable

Body = bytes | AsyncIterator[bytes] | None

# A bytes body at most this large is written together with the head (one send); larger
# ones are written after it, so a big body is not copied.
COALESCE_BODY_BYTES = 16 * 1024


class _BodyFailed(Exception):
    """Wraps the request-body iterator's own exception so that it is re-raised as it was."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _Stale(Exception):
    """A reused connection died before any byte of the response: it may be retried."""


class LeanClient:
    """Upstream HTTP/1.1 client of the relay; the pool opens lazily in the running loop."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self.connect_timeout = settings.connect_timeout
        self.idle_timeout = settings.idle_timeout
        self._pool: Pool | None = None
        self._live: set[UpstreamConnection] = set()

    @property
    def is_open(self) -> bool:
        """Whether a pool (and so maybe open connections) exists; for lifecycle checks."""
        return self._pool is not None

    @property
    def idle_connections(self) -> int:
        return 0 if self._pool is None else self._pool.idle_count

    @property
    def open_connections(self) -> int:
        """Every connection not yet closed, idle or carrying a call."""
        return len(self._live)

    async def aclose(self) -> None:
        """Close every connection, pooled or in use."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close_all()
        for conn in list(self._live):
            conn.close()
        self._live.clear()
        await asyncio.sleep(0)  # let the transports run their connection_lost

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: Body,
        *,
        head_timeout: float,
    ) -> UpstreamResponse:
        """Send one request and return once the response head arrived.

        A reused connection that fails before any response byte is retried once on a new
        connection, but only for no body or a bytes body: those can be sent again whole,
        and nothing of the answer was seen, so the upstream never answered that attempt (the
        usual race of a request crossing the server's close of an idle keep-alive
        connection). A streamed body was consumed by the first attempt and is never retried.
        """
        try:
            target = parse_target(url)
            streamed = body is not None and not isinstance(body, bytes)
            length = declared_length(headers)
            size = len(body) if isinstance(body, bytes) else None
            chunked = streamed and length is None
            head = encode_head(method, target, headers, length=size, chunked=chunked)
        except ValueError:
            raise UpstreamUnavailable() from None
        pool = self._pool
        if pool is None:
            settings = self.settings
            pool = self._pool = Pool(
                max_idle=settings.max_idle, idle_seconds=settings.keepalive_idle
            )
        try:
            async with asyncio.timeout(head_timeout):
                for attempt in (0, 1):
                    conn = pool.take(target.origin) if attempt == 0 else None
                    if conn is None:
                        conn = await self._connect(target)
                    try:
                        return await self._exchange(conn, method, head, body, chunked, length)
                    except _Stale:
                        conn.close()
                        if streamed or attempt:
                            raise UpstreamUnavailable() from None
                    except BaseException:
                        conn.close()
                        raise
        except _BodyFailed as failed:
            raise failed.error from None
        except TimeoutError:
            raise UpstreamTimeout() from None
        raise UpstreamUnavailable()  # not reached: the loop returns or raises

    async def _connect(self, target: Target) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if target.scheme == "https":
            tls = self.settings.ssl_context()
        origin = target.origin
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(origin),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                    ssl_handshake_timeout=self.connect_timeout if tls else None,
                )
        except TimeoutError:
            raise  # too slow to connect or to finish the handshake: 504, like the head
        except (OSError, ssl.SSLError, ssl.CertificateError):
            raise UpstreamUnavailable() from None
        if conn.lost:
            raise UpstreamUnavailable()
        conn.on_gone = self._live.discard
        self._live.add(conn)
        return conn

    async def _exchange(
        self,
        conn: UpstreamConnection,
        method: str,
        head: bytes,
        body: Body,
        chunked: bool,
        length: int | None,
    ) -> UpstreamResponse:
        conn.start(head_only=method == "HEAD")
        reused, conn.reused = conn.reused, True
        try:
            if isinstance(body, bytes):
                if len(body) <= COALESCE_BODY_BYTES:
                    conn.write(head + body)
                else:
                    conn.write(head)
                    conn.write(body)
                    await conn.drain()
            elif body is None:
                conn.write(head)
            else:
                conn.write(head)
                await _send_stream(conn, body, chunked, length)
        except ConnectionError:
            if not conn.head_done:
                raise (
                    _Stale() if reused and not conn.got_bytes else UpstreamUnavailable()
                ) from None
            conn.close()  # an early answer (say 413) is still relayed, on a spent connection
        while not conn.head_done:
            if conn.error is not None:
                raise UpstreamUnavailable()
            if conn.lost:
                raise (_Stale() if reused and not conn.got_bytes else UpstreamUnavailable())
            await conn.wait(None)  # bounded by the caller's head timeout
        return UpstreamResponse(conn, self.idle_timeout, self._recycle)

    def _recycle(self, conn: UpstreamConnection) -> None:
        if self._pool is None:
            conn.close()  # the client was closed while this call ran
        else:
            self._pool.put(conn)


async def _send_stream(
    conn: UpstreamConnection, chunks: AsyncIterator[bytes], chunked: bool, length: int | None
) -> None:
    """Write a streamed body, waiting for the transport to drain between chunks.

    With a declared length, the stream must match it exactly: a longer one is cut off and
    a shorter one fails the call (never a body that frames the next request differently).
    """
    sent = 0
    iterator = aiter(chunks)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            break
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _BodyFailed(exc) from exc
        if not chunk:
            continue
        sent += len(chunk)
        if length is not None and sent > length:
            raise UpstreamUnavailable()
        conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await conn.drain()
    if length is not None and sent != length:
        raise UpstreamUnavailable()
    if chunked:
        conn.write(b"0\r\n\r\n")
