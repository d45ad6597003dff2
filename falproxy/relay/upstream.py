"""The upstream HTTP call of the relay: the only module that talks HTTP to the upstream.

One shared ``aiohttp.ClientSession`` per proxy (pooled connections, redirects never
followed, no cookie jar, no default headers, no decompression). aiohttp rather than httpx
because httpx 0.28's pool slows down as connections are added (about a quarter fewer
requests per CPU-second at 256 connections; ``bench/NOTES.md``). A call streams the request
body up and the response body down chunk by chunk, exactly as received, so server-sent
events pass through event by event, to the front end's :class:`ResponseSink`. When the
client leaves, the front end cancels the relay; a ``finally`` closes the upstream response,
so no pooled connection outlives its client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable
from falproxy.core.headers import Headers, client_response_headers
from falproxy.core.lifecycle import CallRecord
from falproxy.ops.gauges import OPEN_UPSTREAM_RESPONSES
from falproxy.relay.body import Body
from falproxy.relay.exchange import ResponseSink

logger = logging.getLogger("falproxy.relay")

# Headers aiohttp would invent; the proxy sends only what headers.py decided to forward.
SKIPPED_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
# Idle pooled connections kept per proxy, like the 256 keep-alive slots before.
MAX_IDLE_CONNECTIONS = 256


@dataclass(slots=True)
class UpstreamRequest:
    """One call to send: the rebuilt URL, the forwarded headers and the body.

    ``body_error`` keeps what stopped a streamed body (413, client gone): aiohttp reports
    it only as a connection error, and the client must get the real reason.
    """

    method: str
    url: URL
    headers: list[tuple[str, str]]
    body: Body = None
    body_error: Exception | None = None

    @property
    def authorization(self) -> bytes:
        """The key this call sends upstream, which no response header may carry back."""
        for name, value in self.headers:
            if name.lower() == "authorization":
                return value.encode("latin-1")
        return b""

    async def _guarded(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        except Exception as exc:
            self.body_error = exc
            raise


class UpstreamClient:
    """Owns the shared ``aiohttp.ClientSession``; opened lazily, closed by :meth:`aclose`.

    Lazy opening matters when the proxy is mounted inside another app whose lifespan
    never reaches it: the first request opens the session in the running event loop.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = _new_session(self._config)
        return self._session

    @property
    def idle_timeout(self) -> float:
        """How long a response body may stay silent before the relay gives up on it."""
        return self._config.stream_idle_timeout

    @property
    def is_open(self) -> bool:
        """Whether a session (and so pooled connections) exists; for lifecycle checks."""
        return self._session is not None

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def _new_session(config: ProxyConfig) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        total=None,
        connect=config.connect_timeout,  # waiting for a pool slot plus connecting
        sock_connect=min(config.connect_timeout, config.upstream_timeout),
        sock_read=config.stream_idle_timeout,
    )
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),  # upstream cookies are never replayed
        skip_auto_headers=SKIPPED_AUTO_HEADERS,
        auto_decompress=False,  # bytes pass through exactly as fal sent them
        trust_env=False,
        raise_for_status=False,
    )


async def relay(
    upstream: UpstreamClient,
    request: UpstreamRequest,
    record: CallRecord,
    sink: ResponseSink,
    *,
    header_timeout: float,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Send ``request`` upstream and stream its response to ``sink``.

    Raises ``ProxyError`` (502/504) only before the response has started; after that,
    a broken upstream leaves the response unended, so the client sees a truncated body
    rather than a falsely complete one. ``extra_headers`` (CORS grants) are added to the
    upstream's own.
    """
    started = time.perf_counter()
    response = await _open(upstream, request, header_timeout)
    record.first_byte_seconds = time.perf_counter() - started
    await _stream_response(
        response, sink, record, upstream.idle_timeout, request.authorization, extra_headers
    )


async def _open(
    upstream: UpstreamClient, request: UpstreamRequest, header_timeout: float
) -> aiohttp.ClientResponse:
    try:
        async with asyncio.timeout(header_timeout):
            return await upstream.session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                allow_redirects=False,
            )
    except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
        raise UpstreamTimeout() from None
    except aiohttp.ClientError:
        if request.body_error is not None:
            raise request.body_error from None
        raise UpstreamUnavailable() from None


async def _stream_response(
    response: aiohttp.ClientResponse,
    sink: ResponseSink,
    result: CallRecord,
    idle_timeout: float,
    authorization: bytes,
    extra_headers: Sequence[tuple[bytes, bytes]],
) -> None:
    OPEN_UPSTREAM_RESPONSES.inc()
    try:
        headers, _, result.dropped_headers = client_response_headers(
            response.raw_headers, authorization
        )
        if result.dropped_headers:
            logger.warning("dropped %d response headers carrying the key", result.dropped_headers)
        result.status = response.status
        result.request_id = response.headers.get("x-fal-request-id")
        if extra_headers:
            headers.extend(extra_headers)
        await sink.start_response(response.status, headers)
        try:
            while chunk := await _next_chunk(response, idle_timeout):
                result.bytes_down += len(chunk)
                await sink.send_body(chunk)
        except (aiohttp.ClientError, TimeoutError):
            result.upstream_failed()
            logger.warning("upstream broke off a response after %d bytes", result.bytes_down)
            return  # leave the response incomplete: the server aborts the connection
        result.complete = True  # before the end, which may wake a disconnect watcher at once
        await sink.end_response()
    finally:
        try:
            if result.complete:
                response.release()  # fully read: the connection goes back to the pool
            else:
                response.close()  # cut off: the upstream connection is closed, never reused
        finally:
            OPEN_UPSTREAM_RESPONSES.dec()


async def _next_chunk(response: aiohttp.ClientResponse, idle_timeout: float) -> bytes:
    """The next chunk as received (b"" at the end), within the stream idle timeout.

    Our own deadline, besides aiohttp's ``sock_read``: after a malformed chunk header
    aiohttp's payload reader neither fails nor ends (seen with aiohttp 3.14), which would
    leave the relay waiting forever.
    """
    async with asyncio.timeout(idle_timeout):
        return await response.content.readany()


def build_request(
    upstream: UpstreamClient, method: str, url: str, headers: Headers, body: Body
) -> UpstreamRequest:
    """The call for the rebuilt URL; ``body`` is streamed when an iterator.

    The URL is passed on ``encoded``: it was validated byte by byte and must reach fal
    exactly as checked, without yarl re-quoting it.
    """
    del upstream  # kept in the signature: requests used to be built by the client
    pairs = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
    request = UpstreamRequest(method, URL(url, encoded=True), pairs)
    request.body = body if body is None or isinstance(body, bytes) else request._guarded(body)
    return request
