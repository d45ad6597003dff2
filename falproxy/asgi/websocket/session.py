"""One relayed WebSocket, start to end: the socket counterpart of ``FalProxy._proxy``.

connect -> admit (target, policy, key) -> open upstream -> accept -> relay -> event.
Every refusal, including fal being unreachable, happens before the client's socket is
accepted and is answered as HTTP. Exactly one ProxyEvent is logged per socket.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from falproxy.asgi.websocket.handshake import WsAdmission, admit_websocket, deny_websocket
from falproxy.asgi.websocket.relay import WsLimits, WsStats, open_upstream, relay_frames
from falproxy.core.errors import NotFound, ProxyError
from falproxy.core.events import ProxyEvent
from falproxy.core.types import Receive, Scope, Send

if TYPE_CHECKING:  # the app imports this module; a runtime import would be circular
    from falproxy.asgi.app import FalProxy

__all__ = ["SWITCHING_PROTOCOLS", "serve_websocket"]

SWITCHING_PROTOCOLS = 101  # RFC 9110 15.2.2: the status of an accepted upgrade


async def serve_websocket(
    proxy: FalProxy, scope: Scope, receive: Receive, send: Send, *, routed: bool
) -> None:
    """Relay one WebSocket to fal, or refuse it with an HTTP status before the upgrade.

    ``routed`` says whether the socket arrived on the proxy route; anything else is a 404.
    """
    started = time.perf_counter()
    if (await receive())["type"] != "websocket.connect":
        return  # the client left before the handshake reached us
    stats = WsStats()
    limits = WsLimits.from_config(proxy.config)
    app_id: str | None = None
    caller: str | None = None  # the identity's id, once known
    status = 0
    span = proxy.tracing.start("websocket", "WEBSOCKET", scope["headers"])
    proxy.metrics.open_websocket.inc()
    try:
        try:
            if not routed:
                raise NotFound()
            admission = await admit_websocket(proxy, scope)
            app_id = admission.app_id
            caller = admission.identity.id if admission.identity else None
            stats.admitted = admission.reply is None
            if admission.reply is not None:
                status, stats.outcome = admission.reply.status, "refused"
                await deny_websocket(scope, send, admission.reply)
                return
            upstream = await open_upstream(traced(admission, span.carrier()), limits)
        except ProxyError as exc:
            status, caller = exc.status, caller or exc.caller
            stats.outcome = exc.outcome
            await deny_websocket(scope, send, exc)
            return
        status = SWITCHING_PROTOCOLS
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await relay_frames(upstream, receive, send, limits, stats)
    finally:
        proxy.metrics.open_websocket.dec()
        seconds = time.perf_counter() - started
        event = ws_event(app_id, status, stats, seconds, caller)
        span.end(event)
        await proxy.finish(event)


def traced(admission: WsAdmission, carrier: dict[str, str]) -> WsAdmission:
    """``admission`` with the proxy span's trace headers replacing the client's."""
    if not carrier:
        return admission
    kept = tuple((n, v) for n, v in admission.headers if n.lower() not in carrier)
    return dataclasses.replace(admission, headers=kept + tuple(carrier.items()))


def ws_event(
    app_id: str | None,
    status: int,
    stats: WsStats,
    seconds: float,
    caller: str | None = None,
) -> ProxyEvent:
    return ProxyEvent(
        kind="websocket",
        method="WEBSOCKET",
        app_id=app_id,
        status=status,
        outcome=stats.outcome,
        bytes_up=stats.bytes_up,
        bytes_down=stats.bytes_down,
        duration_seconds=seconds,
        frames_up=stats.frames_up,
        frames_down=stats.frames_down,
        close_code=stats.close_code,
        identity=caller,
        admitted=stats.admitted,
    )
