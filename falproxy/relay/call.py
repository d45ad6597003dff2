"""One proxied HTTP call from admission to its event, for every front end.

A front end routes a request to the proxy and calls :func:`serve_route` with its
:class:`~falproxy.relay.exchange.Exchange`; everything from here on is the same for the
ASGI app, the native server and the WSGI adapter (on its loop thread): CORS preflight or
call, admission, body plan, upstream call, refusal answers, CORS grants and the one event
of the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from functools import partial
from typing import Protocol

from falproxy.admission.pipeline import Admitted, Pipeline
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock, BodyKind
from falproxy.core.cors import is_cors_header
from falproxy.core.errors import ClientDisconnected, ProxyError
from falproxy.core.headers import upstream_request_headers
from falproxy.core.lifecycle import HTTP, CallRecord, Phase
from falproxy.core.pipeline import Incoming
from falproxy.ops.calls import Call, CallLog
from falproxy.relay.body import Body, prefetch, read_all
from falproxy.relay.exchange import Exchange
from falproxy.relay.streamed import streamed
from falproxy.relay.upstream import UpstreamClient, build_request, relay

CorsHeaders = Sequence[tuple[bytes, bytes]]


class CallServer(Protocol):
    """The parts of a proxy a call needs (``FalProxy`` has them)."""

    config: ProxyConfig
    pipeline: Pipeline
    calls: CallLog
    upstream: UpstreamClient


async def serve_route(proxy: CallServer, exchange: Exchange) -> None:
    """Serve a request for the proxy route: a CORS preflight, or a proxied call."""
    scope = exchange.scope
    cors = proxy.pipeline.cors
    if cors.is_preflight(scope["method"], scope["headers"]):
        await exchange.answer(cors.preflight(scope["headers"]))
    else:
        await serve_proxied(proxy, exchange, cors.response_headers(scope["headers"]))


async def serve_proxied(proxy: CallServer, exchange: Exchange, cors: CorsHeaders = ()) -> None:
    """Admit and relay one call, or answer why not; the call ends in one event.

    No ``await`` runs inside an ``except`` or ``finally`` block here: mypyc, which compiles
    this module (setup.py), loses the exception being handled across one, and a refusal
    raised in admission escaped its ``except``. Handlers only record; the awaits follow.
    """
    scope = exchange.scope
    method: str = scope["method"]
    call = proxy.calls.open(HTTP, method, scope["headers"])
    record = call.record
    refusal: Answer | None = None
    failure: BaseException | None = None
    try:
        incoming = Incoming(HTTP, method, scope["headers"], scope)
        admitted = await proxy.pipeline.admit(incoming, record)
        if isinstance(admitted, Answer):
            record.answer(admitted)
            await exchange.answer(with_cors(admitted, cors))
        else:
            await _relay(proxy, exchange, admitted, call, cors)
    except ProxyError as exc:
        record.refuse(exc)
        refusal = with_cors(Answer.of_error(exc), cors)
    except ClientDisconnected:
        record.client_gone()
    except BaseException as exc:  # cancelled, or a bug: the call still ends in its event
        failure = exc
    if refusal is not None:
        await _finally(exchange.answer(refusal), proxy.calls.close(call))
        return
    await proxy.calls.close(call)
    if failure is not None:
        raise failure


def with_cors(answer: Answer, cors: CorsHeaders) -> Answer:
    """``answer`` carrying this request's CORS grant instead of any CORS headers of its own.

    fal's ``access-control-*`` headers never reach the client (the relay's header rules
    drop them) and neither do a hook's: the proxy decides which origins may read it.
    """
    if not cors:
        return answer
    kept = tuple(h for h in answer.headers if not is_cors_header(h[0]))
    return Answer(answer.status, (*kept, *cors), answer.body)


async def _relay(
    proxy: CallServer, exchange: Exchange, admitted: Admitted, call: Call, cors: CorsHeaders
) -> None:
    sent = _send(proxy, exchange, admitted, call, cors)
    if admitted.watch is None:
        await sent
    else:  # a hold no answer settled is released
        await _finally(sent, admitted.watch.end())


async def _finally(body: Awaitable[None], cleanup: Awaitable[None]) -> None:
    """``try: await body`` / ``finally: await cleanup``, with no await in a handler
    (see :func:`serve_proxied`)."""
    failure: BaseException | None = None
    try:
        await body
    except BaseException as exc:
        failure = exc
    await cleanup
    if failure is not None:
        raise failure


async def _send(
    proxy: CallServer, exchange: Exchange, admitted: Admitted, call: Call, cors: CorsHeaders
) -> None:
    record = call.record
    body, body_done, length = await _body(proxy, exchange, admitted, record)
    scope = exchange.scope
    headers = upstream_request_headers(scope["headers"], admitted.authorization, length)
    call.span.inject(headers)
    request = build_request(
        proxy.upstream,
        scope["method"],
        admitted.url,
        headers,
        body,
        partial(proxy.pipeline.backup_url, admitted.target),
    )
    record.move(Phase.RELAYING)
    relayed = relay(
        proxy.upstream,
        request,
        record,
        exchange,
        header_timeout=proxy.config.upstream_timeout,
        extra_headers=cors,
        watch=admitted.watch,
    )
    await exchange.run_relay(relayed, record, body_done)


async def _body(
    proxy: CallServer, exchange: Exchange, admitted: Admitted, record: CallRecord
) -> tuple[Body, asyncio.Event, int | None]:
    """The body to send, an event set once it is fully read, and its length."""
    plan = admitted.body
    assert plan is not None  # HTTP calls always have a plan
    done = asyncio.Event()
    config = proxy.config
    if plan.kind is BodyKind.NONE:
        done.set()
        return None, done, plan.length
    clock = BodyClock(config.body_timeout, config.body_deadline, time.monotonic())
    chunks = exchange.body_chunks(plan.max_bytes, clock)
    if plan.kind is BodyKind.TOKEN:
        raw = await read_all(chunks)
        policed = await proxy.pipeline.police_token(raw, exchange.scope, record)
        done.set()
        record.bytes_up = len(policed)
        return policed, done, len(policed)
    head = await prefetch(chunks)
    record.bytes_up = len(head.data)
    if head.ended:  # the whole body: refused or sent whole, never forwarded short
        done.set()
        return head.data, done, len(head.data)
    return streamed(head.data, chunks, done, record), done, plan.length
