"""The sync HTTP relay: the only module that does upstream HTTP I/O for WSGI frameworks.

Flask and Django under WSGI run each request on a thread with no event loop, so they
get their own shared, thread-safe ``httpx.Client`` with the same settings as the async
relay (pooled, redirects never followed, no cookie jar, no default headers). The
response body is relayed by a generator: WSGI servers call its ``close()`` when the
client goes away (the next write fails) or the response ends, and its ``finally``
closes the upstream response, so no upstream call outlives its client.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable
from falproxy.core.headers import Headers, client_response_headers
from falproxy.core.lifecycle import CallRecord

logger = logging.getLogger("falproxy.relay")

SyncBody = Iterator[bytes] | bytes | None


class SyncUpstreamClient:
    """Owns the shared ``httpx.Client``: opened on first use by any thread, closed by ``close``."""

    def __init__(self, config: ProxyConfig) -> None:
        self._config = config
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:  # two first requests on two threads must share one pool
                if self._client is None:
                    self._client = _new_client(self._config)
                client = self._client
        return client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _new_client(config: ProxyConfig) -> httpx.Client:
    # Sync httpx has no deadline for "headers received", so the read timeout is the
    # header timeout; it also bounds each silent gap of the streamed body.
    timeout = httpx.Timeout(
        connect=min(config.connect_timeout, config.upstream_timeout),
        read=min(config.upstream_timeout, config.stream_idle_timeout),
        write=config.upstream_timeout,
        pool=config.connect_timeout,
    )
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    no_cookies = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
    client = httpx.Client(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        cookies=no_cookies,
        trust_env=False,
    )
    for name in list(client.headers):  # httpx adds accept-encoding, user-agent, ...
        del client.headers[name]
    return client


def open_upstream(
    upstream: SyncUpstreamClient, method: str, url: str, headers: Headers, body: SyncBody
) -> httpx.Response:
    """Send the request (body streamed when an iterator) and return once headers arrive.

    Raises ``ProxyError`` 504/502 when fal is too slow or unreachable.
    """
    client = upstream.client
    request = client.build_request(method, url, headers=headers, content=body)
    try:
        return client.send(request, stream=True)
    except httpx.TimeoutException:
        raise UpstreamTimeout() from None
    except httpx.HTTPError:
        raise UpstreamUnavailable() from None


def response_head(response: httpx.Response, result: CallRecord) -> Headers:
    """The status is recorded in ``result``; returns the headers the client may see."""
    sent = next((v for n, v in response.request.headers.raw if n.lower() == b"authorization"), b"")
    headers, _, result.dropped_headers = client_response_headers(response.headers.raw, sent)
    if result.dropped_headers:
        logger.warning("dropped %d response headers carrying the key", result.dropped_headers)
    result.status = response.status_code
    result.request_id = response.headers.get("x-fal-request-id")
    return headers


class RelayedBody:
    """The upstream body as a WSGI iterable: chunks as they arrive, and a ``close()``.

    WSGI servers call ``close()`` when the response ends or the client has gone (the next
    write fails), even if iteration never started; it closes the upstream response, so
    no upstream call outlives its client. A class rather than a generator because an
    unstarted generator's ``close()`` would skip its ``finally``.
    """

    def __init__(
        self, response: httpx.Response, result: CallRecord, on_close: Callable[[], None]
    ) -> None:
        self._response = response
        self._chunks = response.iter_raw()
        self._result = result
        self._on_close = on_close
        self._closed = False

    def __iter__(self) -> RelayedBody:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            self._result.complete = True
            raise
        except httpx.HTTPError:
            self._result.upstream_failed()
            logger.warning("upstream broke off a response after %d bytes", self._result.bytes_down)
            raise UpstreamUnavailable() from None  # the server aborts: truncated, not complete
        self._result.bytes_down += len(chunk)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._result.client_gone()
        try:
            self._response.close()
        finally:
            self._on_close()
