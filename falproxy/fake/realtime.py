"""``wss://fal.run/{id}/realtime``: the realtime socket of protocol section 8.

Binary msgpack maps in, one binary msgpack result out per input (PNG bytes in ``content``,
``request_id`` echoed). Offering the ``x-fake-json`` subprotocol switches the session to
JSON text frames both ways (our convention, handy for clients without msgpack). Auth is
``Authorization: Key`` on the handshake or a ``fal_jwt_token`` minted by the fake for the
alias; a failure is fal's ``{"status":"error","error":"Unauthorized"}`` frame, then a close.

Fake-only input fields, so tests can drive the server side of a relay: ``fake_close_code``
(and ``fake_close_reason``) make the fake close with that code; ``echo`` is copied into the
result; ``with_timings`` adds fal's ``x-fal-message`` timings text frame after the result.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import anyio
import msgpack
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from .auth import TOKEN_QUERY_PARAM, key_accepted, key_from_header
from .context import FakeContext
from .ids import EndpointId, parse_endpoint
from .outputs import colour
from .png import solid_png
from .redact import safe_headers, safe_query

JSON_SUBPROTOCOL: Final = "x-fake-json"
# fal closes sessions without input after ~10 s (docs/fal-protocol.md §11.1). Not scaled by speed: a
# loaded test machine can take seconds to deliver a first input to a fresh socket.
IDLE_SECONDS: Final = 10.0
MAX_BUFFERING: Final = range(1, 61)  # as the clients validate it (docs/fal-protocol.md §11.1)
RESULT_SIDE: Final = 512
TIMING_SECONDS: Final = 0.071
MAX_SESSIONS: Final = 200  # recent sessions kept for introspection
UNAUTHORIZED: Final = {"status": "error", "error": "Unauthorized"}


def fal_error(error: str, reason: str) -> dict[str, str]:
    """fal's in-band error frame (docs/fal-protocol.md §11.1)."""
    return {"type": "x-fal-error", "error": error, "reason": reason}


@dataclass
class RealtimeStats:
    """What the realtime endpoint saw, credentials masked."""

    opened: int = 0
    active: int = 0
    frames_in: int = 0
    frames_out: int = 0
    sessions: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SESSIONS))

    def snapshot(self) -> dict[str, Any]:
        return {
            "opened": self.opened,
            "active": self.active,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "sessions": list(self.sessions),
        }

    def reset(self) -> None:
        """Forget history; sockets still open stay counted."""
        self.opened = self.frames_in = self.frames_out = 0
        self.sessions.clear()


def realtime_result(payload: dict[str, Any], *, as_json: bool) -> dict[str, Any]:
    """One fake result: a solid PNG whose colour follows the seed."""
    seed = payload.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        prompt = str(payload.get("prompt", ""))
        seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") >> 1
    picture = solid_png(RESULT_SIDE, RESULT_SIDE, colour(seed, 0))
    image: dict[str, Any] = {"content_type": "image/png", "width": RESULT_SIDE}
    image["height"] = RESULT_SIDE
    if as_json:  # JSON cannot carry bytes: a data URI, as fal's sync mode returns
        image["url"] = "data:image/png;base64," + base64.b64encode(picture).decode()
    else:
        image["content"] = picture
    result = {"images": [image], "seed": seed, "timings": {"inference": TIMING_SECONDS}}
    for name in ("request_id", "echo"):
        if name in payload:
            result[name] = payload[name]
    return result


class RealtimeEndpoints:
    """The realtime socket under ``/run`` and its introspection routes."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx
        self.stats = RealtimeStats()
        self.idle_seconds = IDLE_SECONDS  # settable, for tests of the TIMEOUT frame

    def routes(self) -> list[BaseRoute]:
        """Full paths; mount them before ``/run`` so the socket route is reached."""
        return [
            WebSocketRoute("/run/{endpoint:path}/realtime", self.session),
            Route("/__fake__/realtime", self.snapshot, methods=["GET"]),
            Route("/__fake__/realtime/reset", self.reset, methods=["POST"]),
        ]

    async def snapshot(self, request: Request) -> Response:
        return JSONResponse(self.stats.snapshot())

    async def reset(self, request: Request) -> Response:
        self.stats.reset()
        return JSONResponse({"reset": True})

    def _auth(self, ws: WebSocket, endpoint: EndpointId) -> str | None:
        if key_accepted(key_from_header(ws.headers.get("authorization")), self.ctx.expected_key):
            return "key"
        token = ws.query_params.get(TOKEN_QUERY_PARAM)
        if token and self.ctx.tokens.allows(token, endpoint.alias):
            return "token"
        return None

    async def session(self, ws: WebSocket) -> None:
        """Validate, accept, then answer inputs until the client leaves or goes idle."""
        endpoint = parse_endpoint(ws.path_params["endpoint"])
        record: dict[str, Any] = {
            "endpoint": endpoint.full if endpoint else None,
            "headers": safe_headers(ws.headers),
            "query": safe_query(ws.scope.get("query_string", b"").decode("latin-1")),
        }
        self.stats.sessions.append(record)
        self.stats.opened += 1
        problem = self._handshake_problem(ws, endpoint)
        if problem is not None:
            record["denied"] = problem.status_code
            await ws.send_denial_response(problem)
            return
        assert endpoint is not None
        as_json = JSON_SUBPROTOCOL in ws.scope.get("subprotocols", [])
        await ws.accept(subprotocol=JSON_SUBPROTOCOL if as_json else None)
        self.stats.active += 1
        try:
            record["auth"] = self._auth(ws, endpoint)
            if record["auth"] is None:
                await ws.send_text(json.dumps(UNAUTHORIZED))
                await ws.close(1000)
                return
            await _Session(ws, self.stats, record, as_json, self.idle_seconds).run()
        finally:
            self.stats.active -= 1

    def _handshake_problem(self, ws: WebSocket, endpoint: EndpointId | None) -> Response | None:
        if endpoint is None:
            return JSONResponse({"detail": "Application not found"}, 404)
        raw = ws.query_params.get("max_buffering")
        if raw is not None and not (raw.isdigit() and int(raw) in MAX_BUFFERING):
            return JSONResponse({"detail": "max_buffering must be an integer from 1 to 60"}, 422)
        return None


class _Session:
    """One accepted, authorised realtime session."""

    def __init__(
        self,
        ws: WebSocket,
        stats: RealtimeStats,
        record: dict[str, Any],
        as_json: bool,
        idle_seconds: float,
    ) -> None:
        self.ws, self.stats, self.record = ws, stats, record
        self.as_json, self.idle_seconds = as_json, idle_seconds

    async def run(self) -> None:
        while True:
            with anyio.move_on_after(self.idle_seconds):
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    self.record["client_close_code"] = message.get("code")
                    self.record["client_close_reason"] = message.get("reason") or ""
                    return
                self.stats.frames_in += 1
                if not await self._answer(message):
                    return
                continue
            await self._send(fal_error("TIMEOUT", "no inputs, reconnect when needed!"), text=True)
            await self._close(1000)
            return

    async def _answer(self, message: Mapping[str, Any]) -> bool:
        """Answer one frame; False once the session is closed."""
        text, data = message.get("text"), message.get("bytes")
        if (text is not None) != self.as_json:
            kind = "binary msgpack" if not self.as_json else "JSON text"
            await self._send(fal_error("UNSUPPORTED_FRAME", f"send {kind} frames"), text=True)
            return True
        try:
            payload = json.loads(text) if text is not None else msgpack.unpackb(data or b"")
        except (ValueError, TypeError):  # msgpack: bad data, or unhashable map keys
            payload = None
        if not isinstance(payload, dict):
            await self._send(fal_error("INTERNAL_ERROR", "input must be a map"), text=True)
            await self._close(1011)
            return False
        code = payload.get("fake_close_code")
        if isinstance(code, int) and not isinstance(code, bool):
            await self._close(code, str(payload.get("fake_close_reason", "")))
            return False
        await self._send(realtime_result(payload, as_json=self.as_json), text=self.as_json)
        if payload.get("with_timings"):
            timings = {"type": "x-fal-message", "action": "timings", "timing": TIMING_SECONDS}
            await self._send(timings, text=True)
        return True

    async def _send(self, value: dict[str, Any], *, text: bool) -> None:
        if text:
            await self.ws.send_text(json.dumps(value))
        else:
            await self.ws.send_bytes(msgpack.packb(value))
        self.stats.frames_out += 1

    async def _close(self, code: int, reason: str = "") -> None:
        self.record["fake_close_code"] = code
        await self.ws.close(code, reason)
