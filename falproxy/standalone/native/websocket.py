"""WebSockets on the native front end: an upgrade request, served without another parser.

The native protocol calls :func:`serve_upgrade` once it has parsed a complete request head
that asks to upgrade. From then on the connection is this module's:

1. anything but ``Upgrade: websocket`` (``h2c``, ``TLS/1.0``) is refused with a JSON 400
   and the connection closes: no other protocol is spoken here, and nothing is handed on;
2. the handshake is checked (RFC 6455 section 4.2.1, :mod:`.ws_handshake`); a bad one is
   a JSON 400 (405 for a method other than GET);
3. a :class:`~falproxy.standalone.native.ws_connection.NativeSocket` takes the transport
   and runs the relay layer's one socket session
   (:func:`falproxy.relay.socket.session.serve_socket`): admission, the upstream socket,
   then the 101 or the JSON refusal, then frames both ways. A relayed socket is handed
   over after its 101 to the frame relay (:mod:`falproxy.relay.socket.splice`: headers
   parsed, payloads passed through, fal's socket dialled raw by
   :mod:`falproxy.relay.socket.dial`). In fake mode, a socket under ``/_fake`` runs the
   fake fal's ASGI app instead (:mod:`.ws_asgi`), message by message.

permessage-deflate is never negotiated with the client, whatever it offers (browsers always
offer it): fal's realtime frames are mostly already-compressed media (JPEG/PNG/WebP in
msgpack), so compressing them again costs CPU and a compression context per socket for
nothing; issue 21 measured the offer, accepted, at 95 µs of CPU and 105 KiB of memory per
socket against 43 µs and 62 KiB without. The upstream socket does not negotiate it either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, Protocol

from uvicorn.config import Config
from uvicorn.server import ServerState

from falproxy.core.answers import Answer
from falproxy.core.errors import BadRequest, ProxyError
from falproxy.core.types import Scope
from falproxy.proxy import Proxy
from falproxy.relay.socket.session import serve_socket
from falproxy.standalone.native.app import served_app
from falproxy.standalone.native.ws_asgi import run_asgi_socket
from falproxy.standalone.native.ws_connection import NativeSocket
from falproxy.standalone.native.ws_handshake import (
    NOT_WEBSOCKET,
    check_handshake,
    is_websocket_upgrade,
    offered_subprotocols,
    refusal_head,
)

__all__ = ["UpgradeHost", "serve_upgrade"]

logger = logging.getLogger("falproxy.server")

# ASGI WebSocket Denial Response extension: the fake fal refuses handshakes with HTTP.
_EXTENSIONS: dict[str, dict[str, Any]] = {"websocket.http.response": {}}


class UpgradeHost(Protocol):
    """What the upgrade needs from the native protocol that parsed its head."""

    loop: asyncio.AbstractEventLoop
    server_state: ServerState
    proxy: Proxy
    config: Config  # uvicorn's: the loaded app (fake mode) and the client-side ping settings

    def default_headers(self) -> bytes: ...


def serve_upgrade(
    transport: asyncio.Transport, scope: Scope, received: bytes, host: UpgradeHost
) -> asyncio.Task[None] | None:
    """Serve the upgrade request ``scope`` on ``transport``; ``received``: the bytes that
    came after its head. Returns at once: the task the socket runs in, or None when the
    handshake was refused (the connection is closing)."""
    defaults = host.default_headers()
    headers = scope["headers"]
    try:
        if not is_websocket_upgrade(headers):
            raise BadRequest(NOT_WEBSOCKET)
        accept_key = check_handshake(scope["method"], scope["http_version"], headers)
    except ProxyError as exc:
        if not transport.is_closing():
            transport.write(refusal_head(Answer.of_error(exc), defaults))
            transport.close()
        return None
    socket_scope = _socket_scope(scope)
    fake_app = _fake_app(host, scope)
    proxy_config = host.proxy.config
    socket = NativeSocket(
        transport,
        socket_scope,
        received,
        accept_key=accept_key,
        loop=host.loop,
        server_state=host.server_state,
        defaults=defaults,
        max_size=host.config.ws_max_size if fake_app else proxy_config.ws_max_message_bytes,
        ping_interval=host.config.ws_ping_interval,
        ping_timeout=host.config.ws_ping_timeout,
        spliced=fake_app is None,  # relayed sockets: frames pass through (splice.py)
    )
    socket.take_over()
    if fake_app is not None:
        session = run_asgi_socket(fake_app, socket)
    else:
        routed = host.proxy.serves_path(socket_scope)
        session = serve_socket(host.proxy, socket, routed=routed, spliced=socket)
    task = host.loop.create_task(_run(socket, session))
    tasks = host.server_state.tasks
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


async def _run(socket: NativeSocket, session: Coroutine[Any, Any, None]) -> None:
    try:
        await session
    except Exception:
        logger.exception("error serving a WebSocket")
    finally:
        if not socket.answered:
            await socket.deny(Answer.of_error(ProxyError()))
        elif not socket.lost:
            await socket.close(1011, "")


def _fake_app(host: UpgradeHost, scope: Scope) -> Any:
    """In fake mode, the ASGI app that serves ``/_fake`` sockets (the fake fal); else None."""
    hands_over = served_app(host.config.loaded_app).hands_over
    if hands_over is None or not hands_over(scope):
        return None
    return host.config.loaded_app


def _socket_scope(scope: Scope) -> Scope:
    """The ASGI ``websocket`` scope of an HTTP upgrade request (ASGI spec 2.3)."""
    socket_scope = {
        key: value for key, value in scope.items() if key not in ("method", "type", "scheme")
    }
    socket_scope.update(
        type="websocket",
        scheme="wss" if scope["scheme"] == "https" else "ws",
        subprotocols=offered_subprotocols(scope["headers"]),
        extensions=_EXTENSIONS,
    )
    return socket_scope
