"""The frame relay of an accepted socket: two pumps and an idle watch, first to stop wins.

The pumps copy whole messages unchanged, text as text and binary as binary, each awaiting
the other side's send before reading the next message: with ``websockets``' bounded receive
queue upstream, and a front end whose ``receive`` pauses reading and whose ``send`` waits
for room, a slow side stalls the fast one instead of growing memory. A watchdog closes
sockets that carry no data for too long. The first pump to stop decides how both sides are
closed, through the legal-code mapping of :mod:`falproxy.relay.socket.close`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from falproxy.admission.ws_limits import MessageCheck
from falproxy.core.lifecycle import CallRecord
from falproxy.relay.socket.close import (
    MESSAGE_TOO_BIG,
    NORMAL_CLOSE,
    POLICY_VIOLATION,
    relayed_close,
)
from falproxy.relay.socket.endings import Ending, outcome_of
from falproxy.relay.socket.exchange import VANISHED, ClientGone, SocketClosed, SocketExchange
from falproxy.relay.socket.upstream import UpstreamSocket, WsLimits

__all__ = ["relay_frames"]

# The reason sent when the idle timeout closes both sides (1000: nothing went wrong).
IDLE_REASON: Final = "idle timeout"
TOO_BIG_REASON: Final = "message too big"
RATE_REASON: Final = "message rate exceeded"


@dataclass(slots=True)
class _Activity:
    """When a data frame last crossed the relay, either way (pings do not count)."""

    last: float = field(default_factory=time.monotonic)


async def relay_frames(
    upstream: UpstreamSocket,
    client: SocketExchange,
    limits: WsLimits,
    stats: CallRecord,
    allow_message: MessageCheck | None = None,
) -> None:
    """Pump messages both ways until one side closes; then close the other and return.

    ``allow_message`` (the caller's message rate, ws_limits.py) is awaited before each
    client message is relayed; a refused message is dropped and both sides close 1008.
    """
    connection = upstream.connection
    activity = _Activity()
    ending = await _first_ending(
        lambda: _client_to_upstream(connection, client, limits, stats, activity, allow_message),
        lambda: _upstream_to_client(connection, client, stats, activity),
        lambda: _idle_watch(activity, limits.idle_timeout),
    )
    code, reason = relayed_close(ending.code, ending.reason)
    stats.close_code = code
    stats.outcome = outcome_of(ending)
    with anyio.CancelScope(shield=True):
        if ending.side != "client":
            await client.close(code, reason)
        if ending.side != "upstream":
            await connection.close(code, reason)


async def _first_ending(*pumps: Callable[[], Awaitable[Ending]]) -> Ending:
    """Run the pumps together; the first to return cancels the others."""
    endings: list[Ending] = []
    async with anyio.create_task_group() as group:

        async def run(pump: Callable[[], Awaitable[Ending]]) -> None:
            endings.append(await pump())
            group.cancel_scope.cancel()

        for pump in pumps:
            group.start_soon(run, pump)
    return endings[0]


async def _client_to_upstream(
    connection: ClientConnection,
    client: SocketExchange,
    limits: WsLimits,
    stats: CallRecord,
    activity: _Activity,
    allow_message: MessageCheck | None,
) -> Ending:
    while True:
        message = await client.receive()
        if isinstance(message, SocketClosed):
            return Ending("client", message.code, message.reason)
        payload = message if isinstance(message, bytes) else message.encode()
        if len(payload) > limits.max_message_bytes:
            return Ending("proxy", MESSAGE_TOO_BIG, TOO_BIG_REASON)
        if allow_message is not None and not await allow_message():
            return Ending("proxy", POLICY_VIOLATION, RATE_REASON)
        stats.frames_up += 1
        stats.bytes_up += len(payload)
        activity.last = time.monotonic()
        try:
            await connection.send(payload, text=isinstance(message, str))
        except ConnectionClosed as exc:
            return _upstream_ending(exc)


async def _upstream_to_client(
    connection: ClientConnection, client: SocketExchange, stats: CallRecord, activity: _Activity
) -> Ending:
    while True:
        try:
            data = await connection.recv()
        except ConnectionClosed as exc:
            return _upstream_ending(exc)
        if isinstance(data, str):
            size = len(data) if data.isascii() else len(data.encode())
        else:
            size = len(data)
        stats.frames_down += 1
        stats.bytes_down += size
        activity.last = time.monotonic()
        try:
            await client.send(data)
        except ClientGone:
            return Ending("client", VANISHED)


async def _idle_watch(activity: _Activity, idle_timeout: float) -> Ending:
    while (remaining := activity.last + idle_timeout - time.monotonic()) > 0:
        await anyio.sleep(remaining)
    return Ending("proxy", NORMAL_CLOSE, IDLE_REASON)


def _upstream_ending(exc: ConnectionClosed) -> Ending:
    """fal's close frame if it sent one; else ours (e.g. 1009, ping timeout); else 1006."""
    if exc.rcvd is not None:
        return Ending("upstream", exc.rcvd.code, exc.rcvd.reason)
    if exc.sent is not None:
        return Ending("upstream", exc.sent.code, exc.sent.reason)
    return Ending("upstream", VANISHED)
