"""The upstream HTTP call of the relay: the only module that talks HTTP to the upstream.

One shared :class:`~falproxy.client.LeanClient` per proxy: HTTP/1.1 over a keep-alive
pool on asyncio protocols, responses parsed with httptools; it follows no redirects,
keeps no cookies, adds no headers and decompresses nothing. It replaced aiohttp, whose
request machinery was about a third of a status poll's profile (``bench/NOTES.md``). A
call streams the request body up and the response body down chunk by chunk, exactly as
received, so server-sent events pass through event by event, to the front end's
:class:`ResponseSink`. When the client leaves, the front end cancels the relay; a
``finally`` closes the upstream response, so no pooled connection outlives its client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from falproxy.admission.watch import CallWatch
from falproxy.client import LeanClient, UpstreamResponse, UpstreamSettings
from falproxy.client.client import Backup
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import UpstreamBroken
from falproxy.core.headers import Headers, client_response_headers
from falproxy.core.lifecycle import CallRecord
from falproxy.ops.gauges import OPEN_UPSTREAM_RESPONSES
from falproxy.relay.body import Body
from falproxy.relay.exchange import ResponseSink

logger = logging.getLogger("falproxy.relay")


@dataclass(slots=True)
class UpstreamRequest:
    """One call to send: the rebuilt URL, the forwarded headers (raw bytes) and the body.

    A streamed body's own error (413, 408, client gone) propagates out of the client as
    raised, so the client gets the real reason.
    """

    method: str
    url: str
    headers: Headers
    body: Body = None
    backup: Backup | None = None  # tried only if ``url``'s host cannot be reached

    @property
    def authorization(self) -> bytes:
        """The key this call sends upstream, which no response header may carry back."""
        for name, value in self.headers:
            if name.lower() == b"authorization":
                return value
        return b""


class UpstreamClient:
    """Owns the shared :class:`LeanClient`; its pool opens lazily, closed by :meth:`aclose`.

    Lazy opening matters when the proxy is mounted inside another app whose lifespan
    never reaches it: the first request opens the pool in the running event loop.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self.settings = UpstreamSettings.from_config(config)
        self.client = LeanClient(self.settings)

    @property
    def idle_timeout(self) -> float:
        """How long a response body may stay silent before the relay gives up on it."""
        return self._config.stream_idle_timeout

    @property
    def is_open(self) -> bool:
        """Whether a pool (and so maybe pooled connections) exists; for lifecycle checks."""
        return self.client.is_open

    async def aclose(self) -> None:
        await self.client.aclose()


async def relay(
    upstream: UpstreamClient,
    request: UpstreamRequest,
    record: CallRecord,
    sink: ResponseSink,
    *,
    header_timeout: float,
    extra_headers: Sequence[tuple[bytes, bytes]] = (),
    watch: CallWatch | None = None,
) -> None:
    """Send ``request`` upstream and stream its response to ``sink``.

    Raises ``ProxyError`` (502/504) only before the response has started; after that,
    a broken upstream leaves the response unended, so the client sees a truncated body
    rather than a falsely complete one. ``extra_headers`` (CORS grants) are added to the
    upstream's own. ``watch`` (ownership and budgets, ``admission/watch.py``) sees the head
    before the response starts, and may read the start of the body, sent first unchanged.
    """
    started = time.perf_counter()
    response = await upstream.client.request(
        request.method,
        request.url,
        request.headers,
        request.body,
        head_timeout=header_timeout,
        backup=request.backup,
    )
    record.first_byte_seconds = time.perf_counter() - started
    record.backup_domain = response.via_backup
    await _stream_response(response, sink, record, request.authorization, extra_headers, watch)


async def _stream_response(
    response: UpstreamResponse,
    sink: ResponseSink,
    result: CallRecord,
    authorization: bytes,
    extra_headers: Sequence[tuple[bytes, bytes]],
    watch: CallWatch | None = None,
) -> None:
    OPEN_UPSTREAM_RESPONSES.inc()
    try:
        headers, _, result.dropped_headers = client_response_headers(
            response.headers, authorization
        )
        if result.dropped_headers:
            logger.warning("dropped %d response headers carrying the key", result.dropped_headers)
        result.status = response.status
        result.request_id = _request_id(response.headers)
        if extra_headers:
            headers.extend(extra_headers)
        first = b""
        if watch is not None:  # e.g. the owner record, written before the caller sees the id
            first = await watch.head(response.status, response.headers, response.read_chunk)
        await sink.start_response(response.status, headers)
        try:
            if first:
                result.bytes_down += len(first)
                await sink.send_body(first)
            while chunk := await response.read_chunk():
                result.bytes_down += len(chunk)
                await sink.send_body(chunk)
        except UpstreamBroken:
            result.upstream_failed()
            logger.warning("upstream broke off a response after %d bytes", result.bytes_down)
            return  # leave the response incomplete: the server aborts the connection
        result.complete = True  # before the end, which may wake a disconnect watcher at once
        await sink.end_response()
    finally:
        try:
            if result.complete:
                response.release()  # fully read: back to the pool if keep-alive allows
            else:
                response.close()  # cut off: the upstream connection is closed, never reused
        finally:
            OPEN_UPSTREAM_RESPONSES.dec()


def _request_id(headers: Headers) -> str | None:
    for name, value in headers:
        if name.lower() == b"x-fal-request-id":
            return value.decode("latin-1")
    return None


def build_request(
    upstream: UpstreamClient,
    method: str,
    url: str,
    headers: Headers,
    body: Body,
    backup: Backup | None = None,
) -> UpstreamRequest:
    """The call for the rebuilt URL: sent as checked, byte for byte (no re-quoting)."""
    del upstream  # kept in the signature: requests used to be built by the client
    return UpstreamRequest(method, url, headers, body, backup)
