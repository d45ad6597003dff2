"""``SyncFalProxy``: the proxy pipeline for WSGI frameworks (Flask, Django under WSGI).

The same steps as ``FalProxy._proxy`` in the same order, with the same pure rules
(target parser, policy, header rules, body framing, errors, events); only the I/O is
blocking. A framework adapter turns its request into ``(method, headers, input)`` and the
returned :class:`SyncReply` into its streaming response, and must close ``reply.body``
when the response ends or the client leaves (WSGI servers do, through the iterable).

The admission step (identity, before_request hooks, rate limits, per-user keys) is the
very ``Gate`` of the ASGI app: its coroutines run on one private event-loop thread
(:mod:`falproxy.wsgi.bridge`), as do the ``on_event`` hooks when a call ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from falproxy.admission.gate import Gate
from falproxy.config.settings import ProxyConfig
from falproxy.core.body import declared_body
from falproxy.core.errors import MethodNotAllowed, PayloadTooLarge, ProxyError
from falproxy.core.events import ProxyEvent
from falproxy.core.head import check_request_head
from falproxy.core.headers import Headers, upstream_request_headers
from falproxy.core.hooks import emit
from falproxy.core.lifecycle import RelayResult, http_event
from falproxy.core.pipeline import check_method, target_from_headers
from falproxy.core.policy import MAX_TOKEN_BODY
from falproxy.core.targets import Target
from falproxy.core.types import Scope
from falproxy.core.upstreams import UpstreamMap
from falproxy.ops.logs import json_logs, log_event
from falproxy.ops.metrics import ProxyMetrics
from falproxy.ops.tracing import CallSpan, tracing_from_env
from falproxy.wsgi.bridge import LoopThread
from falproxy.wsgi.relay import (
    RelayedBody,
    SyncBody,
    SyncUpstreamClient,
    open_upstream,
    response_head,
)

# How much of the request body is read from the WSGI input at a time.
READ_CHUNK = 64 * 1024
# WSGI environ keys that are request headers without the HTTP_ prefix (PEP 3333).
_UNPREFIXED_HEADERS = {"CONTENT_TYPE": b"content-type", "CONTENT_LENGTH": b"content-length"}


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(slots=True)
class SyncReply:
    """A response to stream: ``body`` must be closed (if it has ``close``) once served."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]


def environ_headers(environ: Mapping[str, object]) -> Headers:
    """Raw lower-case header pairs from a WSGI environ (or Django's ``request.META``)."""
    headers: Headers = []
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-").encode("latin-1")
        elif key in _UNPREFIXED_HEADERS:
            name = _UNPREFIXED_HEADERS[key]
            if not value:  # WSGI servers may set CONTENT_LENGTH="" for no body
                continue
        else:
            continue
        headers.append((name, value.encode("latin-1")))
    return headers


def environ_client(environ: Mapping[str, object]) -> tuple[str, int] | None:
    """The peer address of a WSGI request (``REMOTE_ADDR``, ``REMOTE_PORT``)."""
    address = environ.get("REMOTE_ADDR")
    if not isinstance(address, str) or not address:
        return None
    port = environ.get("REMOTE_PORT")
    return address, int(port) if isinstance(port, str) and port.isdigit() else 0


class SyncFalProxy:
    """The proxy for threaded WSGI servers; one shared ``httpx.Client`` per instance."""

    def __init__(self, config: ProxyConfig | None = None) -> None:
        self.config = config if config is not None else ProxyConfig.from_env()
        self.config.require_credential()
        self.policy = self.config.policy()
        self.upstreams = UpstreamMap(self.config.upstreams)
        self.upstream = SyncUpstreamClient(self.config)
        self.metrics = ProxyMetrics()
        self.gate = Gate(self.config, self.metrics)
        self.tracing = tracing_from_env()  # NO_TRACING unless OTEL_* or the app set it up
        self._hooks_loop = LoopThread()

    def close(self) -> None:
        """Close pooled upstream connections and the hooks' event loop."""
        self.upstream.close()
        self._hooks_loop.run(self.gate.aclose())
        self._hooks_loop.close()

    def call(
        self,
        method: str,
        headers: Headers,
        body: Readable,
        *,
        client: tuple[str, int] | None = None,
    ) -> SyncReply:
        """Run one proxied call up to fal's response headers; the body streams lazily.

        ``client`` is the peer address (``REMOTE_ADDR``), for address-keyed rate limits.
        """
        started = time.perf_counter()
        result = RelayResult()
        app_id: str | None = None
        caller: str | None = None
        span = self.tracing.start("http", method, headers)
        try:
            check_method(method)
            check_request_head(headers)
            target = target_from_headers(headers)
            app_id = self.policy.check(target)
            scope = _scope(method, headers, client)
            admission = self._hooks_loop.run(self.gate.admit(scope, target, app_id))
            caller = admission.identity.id if admission.identity else None
            result.admitted = admission.reply is None
            if admission.reply is not None:
                result.status, result.outcome = admission.reply.status, "refused"
                self._finish(
                    http_event(method, app_id, result, time.perf_counter() - started, caller),
                    span,
                )
                encoded = admission.reply.encoded()
                raw = admission.reply.raw_headers(encoded)
                return SyncReply(admission.reply.status, _text_headers(raw), iter([encoded]))
            content, length = self._body(method, target, headers, body, result)
            authorization = admission.authorization
            upstream_headers = upstream_request_headers(headers, authorization, length)
            span.inject(upstream_headers)
            url = self.upstreams.url_for(target)
            response = open_upstream(self.upstream, method, url, upstream_headers, content)
            result.first_byte_seconds = time.perf_counter() - started
            head = response_head(response, result)
        except ProxyError as exc:
            result.status, result.outcome = exc.status, exc.outcome
            caller = caller or exc.caller
            self._finish(
                http_event(method, app_id, result, time.perf_counter() - started, caller), span
            )
            return SyncReply(exc.status, _text_headers(exc.response_headers()), iter([exc.body()]))

        def finished() -> None:
            seconds = time.perf_counter() - started
            self._finish(http_event(method, app_id, result, seconds, caller), span)

        relayed = RelayedBody(response, result, finished)
        return SyncReply(result.status, _text_headers(head), relayed)

    def _finish(self, event: ProxyEvent, span: CallSpan) -> None:
        """One event per call: span, access log, metrics, on_event hooks (on the hooks' loop)."""
        span.end(event)
        log_event(event, json_format=json_logs(self.config))
        self.metrics.observe(event)
        if self.config.on_event:
            self._hooks_loop.run(emit(self.config.on_event, event))

    def _body(
        self,
        method: str,
        target: Target,
        headers: Headers,
        body: Readable,
        result: RelayResult,
    ) -> tuple[SyncBody, int | None]:
        """The body to send and its length (``None``: sent chunked)."""
        declared = declared_body(headers, self.config.max_body_bytes)
        if self.policy.is_token_request(target):
            if method != "POST":
                raise MethodNotAllowed(headers={"allow": "POST"})
            raw = b"".join(_read(body, MAX_TOKEN_BODY, result))
            policed = self.policy.check_token_request(raw)
            return policed, len(policed)
        if not declared.present:
            return None, declared.length
        return _read(body, self.config.max_body_bytes, result, declared.length), declared.length


def _read(
    body: Readable, max_bytes: int, result: RelayResult, length: int | None = None
) -> Iterator[bytes]:
    """Yield the request body as it is read; 413 past ``max_bytes``."""
    remaining = length
    while remaining is None or remaining > 0:
        size = READ_CHUNK if remaining is None else min(READ_CHUNK, remaining)
        chunk = body.read(size)
        if not chunk:
            return
        result.bytes_up += len(chunk)
        if result.bytes_up > max_bytes:
            raise PayloadTooLarge()
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _scope(method: str, headers: Headers, client: tuple[str, int] | None) -> Scope:
    """The ASGI-shaped view of a WSGI request that hooks and the limiter read."""
    return {"type": "http", "method": method, "headers": headers, "client": client}


def _text_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
