"""The HTTP relay: the only module that talks HTTP to the upstream.

One shared ``httpx.AsyncClient`` per proxy (pooled connections, redirects never followed,
no cookie jar, no default headers). A call streams the request body up and the response
body down chunk by chunk, exactly as received, so server-sent events pass through event
by event. While the response is relayed, a watcher listens for the client's disconnect
and cancels the relay; a ``finally`` closes the upstream response, so no pooled
connection outlives its client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http.cookiejar import CookieJar, DefaultCookiePolicy

import anyio
import httpx

from falproxy.config import ProxyConfig
from falproxy.errors import UpstreamTimeout, UpstreamUnavailable
from falproxy.gauges import OPEN_UPSTREAM_RESPONSES
from falproxy.headers import Headers, client_response_headers
from falproxy.types import Receive, Send

logger = logging.getLogger("falproxy.relay")

Body = AsyncIterator[bytes] | bytes | None


@dataclass(slots=True)
class RelayResult:
    """What happened to one relayed call, for the access log and events."""

    status: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    first_byte_seconds: float | None = None
    outcome: str = "ok"  # ok | client_gone | upstream_error | refused
    request_id: str | None = None
    complete: bool = False  # the whole response reached the client


class UpstreamClient:
    """Owns the shared ``httpx.AsyncClient``; opened lazily, closed by :meth:`aclose`.

    Lazy opening matters when the proxy is mounted inside another app whose lifespan
    never reaches it: the first request opens the client in the running event loop.
    """

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = _new_client(self._config)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _new_client(config: ProxyConfig) -> httpx.AsyncClient:
    timeout = httpx.Timeout(
        connect=min(config.connect_timeout, config.upstream_timeout),
        read=config.stream_idle_timeout,
        write=config.upstream_timeout,
        pool=config.connect_timeout,
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=256)
    # A cookie jar whose policy accepts no domain: upstream cookies are never replayed.
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    client = httpx.AsyncClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        cookies=no_cookies,
        trust_env=False,
    )
    for name in list(client.headers):  # httpx adds accept-encoding, user-agent, ...
        del client.headers[name]
    return client


async def relay_http(
    upstream: UpstreamClient,
    request: httpx.Request,
    result: RelayResult,
    *,
    body_done: anyio.Event,
    receive: Receive,
    send: Send,
    header_timeout: float,
) -> None:
    """Send ``request`` upstream and stream its response to the ASGI ``send``.

    Raises ``ProxyError`` (502/504) only before the response has started; after that,
    a broken upstream ends the client's response without its final chunk, so the client
    sees a truncated body rather than a falsely complete one.
    """
    started = time.perf_counter()
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(_watch_disconnect, receive, body_done, group.cancel_scope, result)
        try:
            response = await _open(upstream, request, header_timeout)
            result.first_byte_seconds = time.perf_counter() - started
            await _stream_response(response, send, result)
        except Exception as exc:  # re-raised below, outside the task group's ExceptionGroup
            failure = exc
        finally:
            group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def _open(
    upstream: UpstreamClient, request: httpx.Request, header_timeout: float
) -> httpx.Response:
    try:
        with anyio.fail_after(header_timeout):
            return await upstream.client.send(request, stream=True)
    except (TimeoutError, httpx.TimeoutException):
        raise UpstreamTimeout() from None
    except httpx.HTTPError:
        raise UpstreamUnavailable() from None


async def _stream_response(response: httpx.Response, send: Send, result: RelayResult) -> None:
    OPEN_UPSTREAM_RESPONSES.inc()
    try:
        headers, _ = client_response_headers(response.headers.raw)
        result.status = response.status_code
        result.request_id = response.headers.get("x-fal-request-id")
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        try:
            async for chunk in response.aiter_raw():
                result.bytes_down += len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            result.outcome = "upstream_error"
            logger.warning("upstream broke off a response after %d bytes", result.bytes_down)
            return  # leave the response incomplete: the server aborts the connection
        result.complete = True  # before the last send, which may wake the watcher at once
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        try:
            with anyio.CancelScope(shield=True):
                await response.aclose()
        finally:
            OPEN_UPSTREAM_RESPONSES.dec()


async def _watch_disconnect(
    receive: Receive, body_done: anyio.Event, scope: anyio.CancelScope, result: RelayResult
) -> None:
    """Cancel the relay when the client goes away after sending its body."""
    await body_done.wait()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not result.complete:  # servers also report a disconnect after a full response
                result.outcome = "client_gone"
                scope.cancel()
            return


def build_request(
    upstream: UpstreamClient, method: str, url: str, headers: Headers, body: Body
) -> httpx.Request:
    """An ``httpx.Request`` for the rebuilt URL; ``body`` is streamed when an iterator."""
    return upstream.client.build_request(method, url, headers=headers, content=body)
