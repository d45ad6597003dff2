"""Refusing a WebSocket before the upgrade on the ASGI front end: its one refusal writer.

Everything is decided before the socket is accepted, so a refusal is a real HTTP response
with a JSON ``detail`` (via the ASGI WebSocket Denial Response extension) rather than a
socket that opens and then closes: browsers and clients can tell "not allowed" from
"dropped". The decisions themselves are the shared pipeline's.
"""

from __future__ import annotations

from typing import Final

import anyio

from falproxy.core.answers import Answer
from falproxy.core.types import Scope, Send

# ASGI WebSocket Denial Response extension: lets the app answer the upgrade with HTTP.
DENIAL_EXTENSION: Final = "websocket.http.response"
# What a server without the extension answers when the app closes before accepting.
_CLOSE_BEFORE_ACCEPT: Final = {"type": "websocket.close", "code": 1008}


async def deny_websocket(scope: Scope, send: Send, answer: Answer) -> None:
    """Refuse the upgrade with ``answer`` as an HTTP response when the server supports it.

    Without the denial extension the only option is closing before accepting, which ASGI
    servers answer with a bare 403.
    """
    if DENIAL_EXTENSION not in (scope.get("extensions") or {}):
        await send(_CLOSE_BEFORE_ACCEPT)
        return
    start = {"type": "websocket.http.response.start", "status": answer.status}
    await send({**start, "headers": answer.headers})
    await send({"type": "websocket.http.response.body", "body": answer.body})
    # uvicorn's websockets-sansio protocol logs a spurious "returned without completing
    # handshake" error if the app returns before it has seen its own transport close;
    # one turn of the event loop lets that happen first.
    await anyio.sleep(0)
