"""``LeanClient``: one HTTP/1.1 request at a time per connection, over a keep-alive pool.

The relay's upstream client. It sends the request head and body exactly as given (plus
``Host`` and body framing when absent), waits for the response head within the head
timeout, and hands back an :class:`UpstreamResponse` whose body is read chunk by chunk.
Failures before the response starts are ``UpstreamUnavailable`` (502) or
``UpstreamTimeout`` (504), each logged once as a warning naming its cause (which host,
which phase, which error; never a header); after it, ``UpstreamBroken``. An exception
raised by the request-body iterator propagates unchanged, so the relay can answer 413,
408 or note that the client left.

A request is sent a second time only when fal cannot have acted on the first: no byte of
it reached the connection, or its method is idempotent (:class:`UpstreamSettings`). A POST
written to a kept-alive connection that then dies without answering is a 502, never a
resend: fal may already be running (and billing) the inference.

With a ``backup`` (giving fal's backup domain for the same call), a host that cannot be
reached at all — name resolution, refused, connect timeout, TLS handshake — is replaced
by the backup once, before any byte of the request was sent anywhere.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable

from falproxy.client.connection import UpstreamConnection
from falproxy.client.pool import Pool
from falproxy.client.request import Target, declared_length, encode_head, parse_target
from falproxy.client.response import UpstreamResponse
from falproxy.client.settings import UpstreamSettings
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable

Body = bytes | AsyncIterator[bytes] | None
# Gives the backup URL of a call (fal's backup domain), asked only when the host is unreachable.
Backup = Callable[[], str | None]

logger = logging.getLogger("falproxy.upstream")

# A bytes body at most this large is written together with the head (one send); larger
# ones are written after it, so a big body is not copied.
COALESCE_BODY_BYTES = 16 * 1024


class _BodyFailed(Exception):
    """Wraps the request-body iterator's own exception so that it is re-raised as it was."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class _Unreachable(Exception):
    """No connection to the host could be opened (nothing was sent): the backup may be."""

    def __init__(self, error: UpstreamUnavailable, cause: str) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause


class _Unanswered(Exception):
    """A reused connection ended before any byte of the response.

    ``unsent``: not one byte of the request reached the connection, so the upstream cannot
    have acted on it. Otherwise it may have (it read the request, then closed).
    """

    def __init__(self, *, unsent: bool) -> None:
        super().__init__()
        self.unsent = unsent


def failed(error: UpstreamUnavailable, cause: str) -> UpstreamUnavailable:
    """``error`` with its ``cause``, logged once (the only place upstream failures are)."""
    error.cause = cause
    logger.warning("%s (%d): %s", error.default_detail, error.status, cause)
    return error


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
        backup: Backup | None = None,
    ) -> UpstreamResponse:
        """Send one request and return once the response head arrived.

        A pooled connection that ends before any response byte is replaced by a new one
        and the request sent again only if it can be sent whole again (no body, or a bytes
        body) and fal cannot have acted on it (nothing of it was written, or the method is
        idempotent). A streamed body was consumed by the first attempt and is never resent.
        """
        try:
            target = parse_target(url)
            streamed = body is not None and not isinstance(body, bytes)
            length = declared_length(headers)
            size = len(body) if isinstance(body, bytes) else None
            chunked = streamed and length is None
            head = encode_head(method, target, headers, length=size, chunked=chunked)
        except ValueError as exc:
            raise failed(UpstreamUnavailable(), f"the request cannot be written: {exc}") from None
        try:
            return await self._send(method, target, head, body, chunked, length, head_timeout)
        except _Unreachable as unreachable:
            backup_url = None if backup is None else backup()
            if backup_url is None:
                raise failed(unreachable.error, unreachable.cause) from None
            logger.warning(
                "%s; sending the call to fal's backup domain at %s",
                unreachable.cause,
                backup_url.split("/")[2],
            )
        second = parse_target(backup_url)
        head = encode_head(method, second, headers, length=size, chunked=chunked)
        try:
            response = await self._send(method, second, head, body, chunked, length, head_timeout)
        except _Unreachable as unreachable:
            raise failed(unreachable.error, unreachable.cause) from None
        response.via_backup = True
        return response

    async def _send(
        self,
        method: str,
        target: Target,
        head: bytes,
        body: Body,
        chunked: bool,
        length: int | None,
        head_timeout: float,
    ) -> UpstreamResponse:
        """One host: a pooled or new connection, and at most one resend (see above)."""
        streamed = body is not None and not isinstance(body, bytes)
        pool = self._pool
        if pool is None:
            settings = self.settings
            pool = self._pool = Pool(
                asyncio.get_running_loop(),
                max_idle=settings.max_idle,
                idle_seconds=settings.keepalive_idle,
            )
        # One deadline for connecting, sending and the response head; checked where the
        # call waits (cheaper per call than an asyncio.timeout scope).
        deadline = pool.loop.time() + head_timeout
        phase = "connecting to"
        try:
            for attempt in (0, 1):
                conn = pool.take(target.origin) if attempt == 0 else None
                if conn is None:
                    phase = "connecting to"
                    try:
                        conn = await self._connect(target, deadline)
                    except _Unreachable as unreachable:
                        if attempt:  # a request went out before: no other host now
                            raise failed(unreachable.error, unreachable.cause) from None
                        raise
                phase = "waiting for the response head of"
                try:
                    return await self._exchange(conn, method, head, body, chunked, length, deadline)
                except _Unanswered as unanswered:
                    conn.close()
                    resend = unanswered.unsent or self.settings.may_resend(method)
                    if streamed or attempt or not resend:
                        raise failed(
                            UpstreamUnavailable(),
                            f"{target.host}:{target.port} closed the connection without answering"
                            + ("" if resend else f" (a {method} is never sent twice)"),
                        ) from None
                except BaseException:
                    conn.close()
                    raise
        except _BodyFailed as error:
            raise error.error from None
        except TimeoutError:
            where = f"{target.host}:{target.port}"
            raise failed(
                UpstreamTimeout(), f"timed out {phase} {where} after {head_timeout:g} s"
            ) from None
        raise UpstreamUnavailable()  # not reached: the loop returns or raises

    async def _connect(self, target: Target, deadline: float) -> UpstreamConnection:
        """A new connection to ``target``; :class:`_Unreachable` when none can be opened,
        ``TimeoutError`` when the call's ``deadline`` passes first."""
        loop = asyncio.get_running_loop()
        tls = self.settings.ssl_context() if target.scheme == "https" else None
        origin = target.origin
        where = f"{target.host}:{target.port}"
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + self.connect_timeout)):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(origin, loop),
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                    ssl_handshake_timeout=self.connect_timeout if tls else None,
                )
        except TimeoutError:
            if loop.time() >= deadline:
                raise  # the call's own deadline, not the connect timeout
            raise _Unreachable(
                UpstreamTimeout(),
                f"connecting to {where} (TCP and TLS) took over {self.connect_timeout:g} s",
            ) from None
        except (OSError, ssl.SSLError, ssl.CertificateError) as exc:
            raise _Unreachable(UpstreamUnavailable(), self._connect_cause(target, exc)) from None
        if conn.lost:
            raise _Unreachable(UpstreamUnavailable(), f"{where} closed the connection at once")
        conn.on_gone = self._live.discard
        self._live.add(conn)
        return conn

    def _connect_cause(self, target: Target, exc: BaseException) -> str:
        """Why a connection could not be opened, for the operator (no secrets involved)."""
        where = f"{target.host}:{target.port}"
        if isinstance(exc, socket.gaierror):
            return f"name resolution failed for {target.host}: {exc.strerror or exc}"
        if isinstance(exc, ssl.SSLCertVerificationError):
            trusted = self.settings.ca_file or "the system store"
            reason = exc.verify_message or exc.reason or "verification failed"
            return f"TLS verification of {target.host} failed ({reason}; trusted CAs: {trusted})"
        if isinstance(exc, ssl.SSLError):
            return f"TLS handshake with {where} failed ({exc.reason or exc})"
        if isinstance(exc, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(exc, ConnectionResetError):
            return f"connection reset by {where}"
        detail = exc.strerror if isinstance(exc, OSError) else None
        return f"cannot connect to {where}: {detail or type(exc).__name__}"

    async def _exchange(
        self,
        conn: UpstreamConnection,
        method: str,
        head: bytes,
        body: Body,
        chunked: bool,
        length: int | None,
        deadline: float,
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
                    async with asyncio.timeout_at(deadline):
                        await conn.drain()
            elif body is None:
                conn.write(head)
            else:
                conn.write(head)
                async with asyncio.timeout_at(deadline):
                    await _send_stream(conn, body, chunked, length)
            conn.request_sent()
        except ConnectionError:
            if not conn.head_done:
                if reused and not conn.got_bytes:
                    raise _Unanswered(unsent=conn.sent == 0) from None
                raise self._broken(conn) from None
            conn.close()  # an early answer (say 413) is still relayed, on a spent connection
        loop = conn.loop
        while not conn.head_done:
            if conn.error is not None:
                raise self._broken(conn)
            if conn.lost:
                if reused and not conn.got_bytes:
                    raise _Unanswered(unsent=conn.sent == 0)
                raise self._broken(conn)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError()
            await conn.wait(remaining)
        return UpstreamResponse(conn, self.idle_timeout, self._recycle)

    def _broken(self, conn: UpstreamConnection) -> UpstreamUnavailable:
        _, host, port = conn.origin
        reason = conn.error or "closed the connection before answering"
        return failed(UpstreamUnavailable(), f"{host}:{port} {reason}")

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
            raise failed(UpstreamUnavailable(), "the request body ran past its Content-Length")
        conn.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
        await conn.drain()
    if length is not None and sent != length:
        raise failed(UpstreamUnavailable(), "the request body ended before its Content-Length")
    if chunked:
        conn.write(b"0\r\n\r\n")
