"""``SyncFalProxy``: the WSGI front end (Flask, Django under WSGI). It does only WSGI I/O.

A call is admitted by the very :class:`~falproxy.admission.pipeline.Pipeline` of the ASGI
app (method, head, host, target, policy, identity, hooks, limits, key, body plan), run on
one private event-loop thread (:mod:`falproxy.wsgi.bridge`) because hooks and the limiter
are async. Then the body is read with the same caps and timeouts and sent upstream by the
sync relay; answers the proxy writes itself (refusals, hook replies, CORS preflights, the
operational endpoints) are :class:`~falproxy.core.answers.Answer` values, turned into a
:class:`SyncReply` in one place. Every call ends in one event via the shared ``CallLog``.

A framework adapter turns its request into ``(method, headers, input)`` plus the environ's
socket and address, and the returned :class:`SyncReply` into its streaming response; it
must close ``reply.body`` when the response ends or the client leaves (WSGI servers do,
through the iterable).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from falproxy.admission.base import ProxyBase
from falproxy.admission.pipeline import Admitted
from falproxy.admission.watch import CallWatch
from falproxy.client import LeanClient, UpstreamSettings
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock, BodyKind
from falproxy.core.errors import ProxyError
from falproxy.core.headers import Headers, upstream_request_headers
from falproxy.core.lifecycle import HTTP, CallRecord, Phase
from falproxy.core.pipeline import Incoming
from falproxy.core.types import Scope
from falproxy.ops.calls import Call
from falproxy.relay.pricing_client import pricing_fetch
from falproxy.wsgi.body import Readable, prefetched, read_all, read_chunks
from falproxy.wsgi.bridge import LoopThread
from falproxy.wsgi.environ import environ_scope
from falproxy.wsgi.relay import (
    RelayedBody,
    SyncBody,
    SyncUpstreamClient,
    open_upstream,
    response_head,
)

__all__ = ["Readable", "SyncFalProxy", "SyncReply"]


@dataclass(slots=True)
class SyncReply:
    """A response to stream: ``body`` must be closed (if it has ``close``) once served."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]

    @classmethod
    def of(cls, answer: Answer) -> SyncReply:
        """The one way an answer of the proxy's own becomes a WSGI response."""
        return cls(answer.status, _text_headers(answer.headers), [answer.body])


class SyncFalProxy(ProxyBase):
    """The proxy for threaded WSGI servers; one shared ``httpx.Client`` per instance."""

    def __init__(self, config: ProxyConfig | None = None) -> None:
        super().__init__(config)
        self.upstream = SyncUpstreamClient(self.config)
        self._loop = LoopThread()
        self._pricing: LeanClient | None = None
        if self.pipeline.requests.budgets is not None:  # fal's pricing API, on the loop thread
            self._pricing = LeanClient(UpstreamSettings.from_config(self.config))
            self.pipeline.requests.budgets.prices.use(pricing_fetch(self._pricing))

    def close(self) -> None:
        """Close pooled upstream connections and the hooks' event loop."""
        self.upstream.close()
        if self._pricing is not None:
            self._loop.run(self._pricing.aclose())
        self._loop.run(self.pipeline.aclose())
        self._loop.close()

    def serve_ops(self, path: str, method: str, headers: Headers) -> SyncReply | None:
        """The answer of the operational endpoint at ``path``, or None if there is none."""
        endpoint = self.ops.match(path)
        if endpoint is None:
            return None
        return SyncReply.of(self._loop.run(self.ops.answer(endpoint, method, headers)))

    def call(
        self,
        method: str,
        headers: Headers,
        body: Readable,
        *,
        client: tuple[str, int] | None = None,
        sock: socket.socket | None = None,
    ) -> SyncReply:
        """Serve one call (or CORS preflight) up to fal's response headers; the body streams.

        ``client`` is the peer address (``REMOTE_ADDR``), for address-keyed rate limits;
        ``sock`` the client's socket, which bounds body reads by the body timeouts.
        """
        cors = self.pipeline.cors
        if cors.is_preflight(method, headers):
            return SyncReply.of(cors.preflight(headers))
        reply = self._call(method, headers, body, client, sock)
        reply.headers.extend(_text_headers(cors.response_headers(headers)))
        return reply

    def _call(
        self,
        method: str,
        headers: Headers,
        body: Readable,
        client: tuple[str, int] | None,
        sock: socket.socket | None,
    ) -> SyncReply:
        call = self.calls.open(HTTP, method, headers)
        record = call.record
        watch: CallWatch | None = None
        try:
            incoming = Incoming(HTTP, method, headers, environ_scope(method, headers, client))
            admitted = self._loop.run(self.pipeline.admit(incoming, record))
            if isinstance(admitted, Answer):
                record.answer(admitted)
                self._close(call)
                return SyncReply.of(admitted)
            watch = admitted.watch
            content, length = self._body(admitted, incoming.scope, body, record, sock)
            upstream_headers = upstream_request_headers(headers, admitted.authorization, length)
            call.span.inject(upstream_headers)
            record.move(Phase.RELAYING)
            started = time.perf_counter()
            response = open_upstream(self.upstream, method, admitted.url, upstream_headers, content)
            record.first_byte_seconds = time.perf_counter() - started
            head = response_head(response, record)
            if watch is not None:  # the owner record is written before the caller sees the id
                raw = response.headers.raw
                self._loop.run(watch.head(response.status_code, raw, None))
        except ProxyError as exc:
            record.refuse(exc)
            self._close(call, watch)
            return SyncReply.of(Answer.of_error(exc))
        relayed = RelayedBody(response, record, lambda: self._close(call, watch))
        return SyncReply(record.status, _text_headers(head), relayed)

    def _close(self, call: Call, watch: CallWatch | None = None) -> None:
        if watch is not None:
            self._loop.run(watch.end())
        self.calls.close_sync(call, self._loop.run)

    def _body(
        self,
        admitted: Admitted,
        scope: Scope,
        body: Readable,
        record: CallRecord,
        sock: socket.socket | None,
    ) -> tuple[SyncBody, int | None]:
        """The body to send and its length (``None``: sent chunked)."""
        plan = admitted.body
        assert plan is not None  # HTTP calls always have a plan
        clock = BodyClock(self.config.body_timeout, self.config.body_deadline, time.monotonic())
        if plan.kind is BodyKind.TOKEN:
            raw = read_all(body, plan.max_bytes, record, clock, sock)
            policed = self._loop.run(self.pipeline.police_token(raw, scope, record))
            record.bytes_up = len(policed)
            return policed, len(policed)
        if plan.kind is BodyKind.NONE:
            return None, plan.length
        chunks = read_chunks(body, plan.max_bytes, record, plan.length, clock, sock)
        return prefetched(chunks), plan.length


def _text_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
