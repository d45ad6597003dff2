"""One relayed WebSocket, start to end: the socket counterpart of an HTTP call.

admit (the shared pipeline: head, host, target, policy, identity, hooks, limits, key) ->
open upstream -> accept -> relay -> event. Every refusal, including fal being unreachable,
happens before the client's socket is accepted and is answered as HTTP through
:meth:`SocketExchange.deny`. Exactly one ProxyEvent is recorded per socket. Every front end
that serves sockets runs this, so none of them can skip a step.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Final, Protocol

from falproxy.admission.pipeline import Pipeline
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.errors import NotFound, ProxyError
from falproxy.core.lifecycle import SWITCHING_PROTOCOLS, WEBSOCKET, Phase
from falproxy.core.outcomes import Outcome
from falproxy.core.pipeline import Incoming
from falproxy.core.sockets import socket_request_headers
from falproxy.ops.calls import CallLog
from falproxy.relay.socket.dial import RawUpstream, dial_upstream
from falproxy.relay.socket.exchange import ClientGone, SocketExchange
from falproxy.relay.socket.pumps import relay_frames
from falproxy.relay.socket.splice import Spliceable, relay_spliced
from falproxy.relay.socket.upstream import WsLimits, open_upstream

__all__ = ["METHOD", "SocketHost", "serve_socket"]

METHOD: Final = "WEBSOCKET"


class SocketHost(Protocol):
    """What a socket needs from the proxy that serves it (``FalProxy``)."""

    config: ProxyConfig
    pipeline: Pipeline
    calls: CallLog


async def serve_socket(
    proxy: SocketHost,
    client: SocketExchange,
    *,
    routed: bool,
    spliced: Spliceable | None = None,
) -> None:
    """Relay one WebSocket to fal, or refuse it with an HTTP status before the upgrade.

    ``routed`` says whether the socket arrived on the proxy route; anything else is a 404.
    ``spliced``: the client socket again, when its front end can hand its transport over
    (the native server): fal's socket is then dialled raw and frames are relayed by
    :mod:`.splice`; otherwise messages are relayed by :mod:`.pumps`.
    """
    scope = client.scope
    call = proxy.calls.open(WEBSOCKET, METHOD, scope["headers"])
    record = call.record
    limits = WsLimits.from_config(proxy.config)
    slot = ExitStack()  # this socket's place among its caller's open sockets (ws_limits.py)
    try:
        try:
            if not routed:
                raise NotFound()
            query: bytes = scope.get("query_string", b"")
            incoming = Incoming(WEBSOCKET, METHOD, scope["headers"], scope, query)
            admitted = await proxy.pipeline.admit(incoming, record)
            if isinstance(admitted, Answer):
                record.answer(admitted)
                await client.deny(admitted)
                return
            sockets = proxy.pipeline.gate.sockets
            slot.enter_context(sockets.socket(record.identity, admitted.client))  # or 429
            headers = list(socket_request_headers(scope["headers"], admitted.authorization))
            call.span.inject(headers)
            subprotocols = tuple(scope.get("subprotocols") or ())
            dial = open_upstream if spliced is None else dial_upstream
            upstream = await dial(admitted.url, headers, subprotocols, limits)
        except ProxyError as exc:
            record.refuse(exc)
            await client.deny(Answer.of_error(exc))
            return
        record.status = SWITCHING_PROTOCOLS
        record.move(Phase.RELAYING)
        async with upstream:
            try:
                await client.accept(upstream.subprotocol)
            except ClientGone:  # the client left while fal was being dialled
                record.outcome = Outcome.CLIENT_GONE
                return
            allow = sockets.message_check(record.identity, admitted.client)
            if isinstance(upstream, RawUpstream):
                assert spliced is not None
                await relay_spliced(upstream, spliced, limits, record, allow)
            else:
                await relay_frames(upstream, client, limits, record, allow)
    finally:
        slot.close()
        await proxy.calls.close(call)
