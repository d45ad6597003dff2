"""The WebSocket relay: the only module that talks WebSocket to the upstream.

One upstream connection per relayed socket, opened with the ``websockets`` library and the
server's ``Authorization: Key`` (the handshake fal documents for server-side clients), before
the client's socket is accepted. Then two pumps copy frames unchanged, text as text and
binary as binary, each awaiting the other side's send before reading the next frame: with
``websockets``' bounded receive queue and uvicorn pausing reads until the app receives, a
slow side stalls the fast one instead of growing memory. A watchdog closes sockets that
carry no data for too long. The first pump to stop decides how both sides are closed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final

import anyio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from falproxy.admission.ws_limits import MessageCheck
from falproxy.asgi.websocket.close import (
    MESSAGE_TOO_BIG,
    NORMAL_CLOSE,
    POLICY_VIOLATION,
    relayed_close,
)
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import UpstreamTimeout, UpstreamUnavailable
from falproxy.core.lifecycle import CallRecord
from falproxy.core.outcomes import Outcome
from falproxy.core.types import Message, Receive, Send

__all__ = ["UpstreamSocket", "WsLimits", "open_upstream", "relay_frames"]

# How long closing the upstream may wait for fal's close frame before dropping the TCP link.
UPSTREAM_CLOSE_TIMEOUT: Final = 5.0
# The reason sent when the idle timeout closes both sides (1000: nothing went wrong).
IDLE_REASON: Final = "idle timeout"
TOO_BIG_REASON: Final = "message too big"
RATE_REASON: Final = "message rate exceeded"
# RFC 9110 15.4: 3xx, redirection; never followed (the key would go where it was sent).
REDIRECTS: Final = range(300, 400)
# A peer that vanished without a close frame (RFC 6455 7.1.5: "closed abnormally").
_VANISHED: Final = 1006
# websockets logs every handshake header at DEBUG ("> authorization: Key ..."); these
# header names are masked in its records before any handler sees them.
MASKED_HANDSHAKE_HEADERS: Final = frozenset({"authorization"})
_HEADER_LINE: Final = "> %s: %s"


class _MaskCredentials(logging.Filter):
    """Replaces credential header values in the upstream library's handshake log lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != _HEADER_LINE or not isinstance(args, tuple) or len(args) != 2:
            return True
        name, _value = args
        if str(name).lower() in MASKED_HANDSHAKE_HEADERS:
            record.args = (name, "***")
        return True


class _NoRedirects(connect):
    """``websockets``' client with redirects switched off at their one decision point.

    websockets 15+ follows up to ``WEBSOCKETS_MAX_REDIRECTS`` (10) 3xx answers: it would
    resend ``Authorization: Key`` to a path the policy never checked, or connect to a host
    outside the allow-list. ``process_redirect`` decides whether a failed handshake is a
    redirect to follow; returning the error itself makes every 3xx fail like any other
    refused handshake (``InvalidStatus``), before a second connection is opened.
    """

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


# The logger handed to websockets for upstream connections, with the mask attached.
upstream_logger = logging.getLogger("falproxy.asgi.websocket.relay")
upstream_logger.addFilter(_MaskCredentials())


@dataclass(frozen=True, slots=True)
class WsLimits:
    """The relay's bounds, taken from :class:`ProxyConfig`."""

    max_message_bytes: int
    idle_timeout: float
    ping_interval: float
    ping_timeout: float
    max_queue: int
    open_timeout: float

    @classmethod
    def from_config(cls, config: ProxyConfig) -> WsLimits:
        return cls(
            max_message_bytes=config.ws_max_message_bytes,
            idle_timeout=config.ws_idle_timeout,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            max_queue=config.ws_max_queue,
            open_timeout=config.connect_timeout,
        )


@dataclass(slots=True)
class _Activity:
    """When a data frame last crossed the relay, either way (pings do not count)."""

    last: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class _Ending:
    """Who stopped first, with which close code and reason."""

    side: str  # "client", "upstream" or "proxy"
    code: int | None
    reason: str = ""


class UpstreamSocket:
    """An open upstream connection; ``async with`` guarantees it is closed."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol fal chose among those the client offered."""
        return self.connection.subprotocol

    async def __aenter__(self) -> UpstreamSocket:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.connection.close()


async def open_upstream(
    url: str,
    headers: Sequence[tuple[bytes, bytes]],
    subprotocols: Sequence[str],
    limits: WsLimits,
) -> UpstreamSocket:
    """Connect to ``url`` with exactly ``headers``; raise 502/504 ``ProxyError`` on failure."""
    try:
        connection = await _NoRedirects(
            url,
            additional_headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            user_agent_header=None,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            compression=None,
            open_timeout=limits.open_timeout,
            ping_interval=limits.ping_interval,
            ping_timeout=limits.ping_timeout,
            close_timeout=UPSTREAM_CLOSE_TIMEOUT,
            max_size=limits.max_message_bytes,
            max_queue=limits.max_queue,
            logger=upstream_logger,
        )
    except TimeoutError:
        raise UpstreamTimeout("fal did not accept the WebSocket in time") from None
    except InvalidStatus as exc:
        status = exc.response.status_code
        if REDIRECTS.start <= status < REDIRECTS.stop:
            raise UpstreamUnavailable(
                f"fal answered the WebSocket with a redirect (HTTP {status}); "
                "redirects are never followed"
            ) from None
        raise UpstreamUnavailable(f"fal refused the WebSocket (HTTP {status})") from None
    except (InvalidHandshake, OSError):
        raise UpstreamUnavailable("The fal WebSocket could not be opened") from None
    return UpstreamSocket(connection)


async def relay_frames(
    upstream: UpstreamSocket,
    receive: Receive,
    send: Send,
    limits: WsLimits,
    stats: CallRecord,
    allow_message: MessageCheck | None = None,
) -> None:
    """Pump frames both ways until one side closes; then close the other and return.

    ``allow_message`` (the caller's message rate, ws_limits.py) is awaited before each
    client message is relayed; a refused message is dropped and both sides close 1008.
    """
    connection = upstream.connection
    activity = _Activity()
    ending = await _first_ending(
        lambda: _client_to_upstream(connection, receive, limits, stats, activity, allow_message),
        lambda: _upstream_to_client(connection, send, stats, activity),
        lambda: _idle_watch(activity, limits.idle_timeout),
    )
    code, reason = relayed_close(ending.code, ending.reason)
    stats.close_code = code
    stats.outcome = _outcome(ending)
    if ending.side != "client":
        await _close_client(send, code, reason)
    if ending.side != "upstream":
        with anyio.CancelScope(shield=True):
            await connection.close(code, reason)


async def _first_ending(*pumps: Callable[[], Awaitable[_Ending]]) -> _Ending:
    """Run the pumps together; the first to return cancels the others."""
    endings: list[_Ending] = []
    async with anyio.create_task_group() as group:

        async def run(pump: Callable[[], Awaitable[_Ending]]) -> None:
            endings.append(await pump())
            group.cancel_scope.cancel()

        for pump in pumps:
            group.start_soon(run, pump)
    return endings[0]


async def _client_to_upstream(
    connection: ClientConnection,
    receive: Receive,
    limits: WsLimits,
    stats: CallRecord,
    activity: _Activity,
    allow_message: MessageCheck | None,
) -> _Ending:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return _client_ending(message)
        if message["type"] != "websocket.receive":
            continue
        data: bytes | None = message.get("bytes")
        text: str | None = message.get("text")
        payload = data if data is not None else (text or "").encode()
        if len(payload) > limits.max_message_bytes:
            return _Ending("proxy", MESSAGE_TOO_BIG, TOO_BIG_REASON)
        if allow_message is not None and not await allow_message():
            return _Ending("proxy", POLICY_VIOLATION, RATE_REASON)
        stats.frames_up += 1
        stats.bytes_up += len(payload)
        activity.last = time.monotonic()
        try:
            await connection.send(payload, text=data is None)
        except ConnectionClosed as exc:
            return _upstream_ending(exc)


async def _upstream_to_client(
    connection: ClientConnection, send: Send, stats: CallRecord, activity: _Activity
) -> _Ending:
    while True:
        try:
            data = await connection.recv()
        except ConnectionClosed as exc:
            return _upstream_ending(exc)
        message: Message
        if isinstance(data, str):
            message = {"type": "websocket.send", "text": data}
            size = len(data) if data.isascii() else len(data.encode())
        else:
            message = {"type": "websocket.send", "bytes": data}
            size = len(data)
        stats.frames_down += 1
        stats.bytes_down += size
        activity.last = time.monotonic()
        try:
            await send(message)
        except OSError:  # ASGI: sending to a client that is gone raises an OSError
            return _Ending("client", _VANISHED)


async def _idle_watch(activity: _Activity, idle_timeout: float) -> _Ending:
    while (remaining := activity.last + idle_timeout - time.monotonic()) > 0:
        await anyio.sleep(remaining)
    return _Ending("proxy", NORMAL_CLOSE, IDLE_REASON)


def _client_ending(message: Message) -> _Ending:
    """The client's close, telling a lost connection from an empty close frame.

    uvicorn's websockets-sansio protocol reports a connection lost after the handshake as
    code 1005 with no ``reason`` key, while a real close frame always comes with one; the
    former is a vanished client (1006), the latter a normal close without a code.
    """
    code = message.get("code", 1005)
    if code == 1005 and "reason" not in message:
        code = _VANISHED
    return _Ending("client", code, message.get("reason") or "")


def _upstream_ending(exc: ConnectionClosed) -> _Ending:
    """fal's close frame if it sent one; else ours (e.g. 1009, ping timeout); else 1006."""
    if exc.rcvd is not None:
        return _Ending("upstream", exc.rcvd.code, exc.rcvd.reason)
    if exc.sent is not None:
        return _Ending("upstream", exc.sent.code, exc.sent.reason)
    return _Ending("upstream", _VANISHED)


def _outcome(ending: _Ending) -> Outcome:
    if ending.code == _VANISHED:
        return Outcome.CLIENT_GONE if ending.side == "client" else Outcome.UPSTREAM_ERROR
    if ending.side == "proxy" and ending.code == POLICY_VIOLATION:
        return Outcome.LIMITED
    return Outcome.REFUSED if ending.code == MESSAGE_TOO_BIG else Outcome.OK


async def _close_client(send: Send, code: int, reason: str) -> None:
    with contextlib.suppress(OSError):  # already gone: nothing left to tell it
        await send({"type": "websocket.close", "code": code, "reason": reason})
