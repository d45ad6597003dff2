"""The frame relay: two transports wired to each other, payload bytes passed through.

After both handshakes the client's transport and fal's (:mod:`.dial`) get one protocol
each, and every read is handled in its callback: frame headers are parsed
(:class:`~falproxy.wire.ws_frames.FrameReader`), a client frame is re-masked toward fal
with a fresh key (RFC 6455 section 5.3: fal hears a client of its own, in one C pass that
unmasks and masks together), fal's frames go to the client unchanged. No task runs per
message or per socket; the session's task only waits for :attr:`Splice.done`.

The guarantees of the message relay (:mod:`.pumps`) hold here too:

- a message over ``max_message_bytes``, counted across its fragments, closes with 1009
  before its first oversized frame is relayed; either direction;
- the message rate (``allow``, admission/ws_limits.py) is asked at each client message's
  first frame, in a task of its own (the one task per message, and only when a rate is
  set), while the client's reading is held; a refused message is not relayed and both
  sides close 1008;
- no data frame either way for ``idle_timeout``: both sides close 1000;
- fal is pinged every ``ping_interval``; no pong within ``ping_timeout`` closes both
  sides 1011; the client is pinged too when the front end asks (uvicorn's settings);
- close codes and reasons cross through :func:`~.close.relayed_close`; frames that break
  a rule (RSV bits, bad masking, fragments out of order) close with 1002;
- back-pressure: when one side's write buffer passes its high-water mark, the other
  side's reading pauses until it drains, so memory per socket stays one read deep;
- pings and pongs are answered by the relay on each hop and never crossed over.

What differs from the message relay: text frames are not checked for UTF-8 (an endpoint's
duty, RFC 6455 section 8.1; fal and the browser both check what they receive), and a
message's frames keep their fragmentation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Final, Protocol

from falproxy.admission.ws_limits import MessageCheck
from falproxy.core.lifecycle import CallRecord
from falproxy.relay.socket.close import NORMAL_CLOSE, relayed_close
from falproxy.relay.socket.dial import RawUpstream
from falproxy.relay.socket.endings import Ending, outcome_of
from falproxy.relay.socket.exchange import VANISHED
from falproxy.relay.socket.upstream import WsLimits
from falproxy.wire.ws_frames import (
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    FrameError,
    FrameHeader,
    FrameReader,
    MaskKeys,
    apply_mask,
    close_frame,
    control_frame,
    data_header,
    parse_close,
)

__all__ = ["CLOSE_TIMEOUT", "Splice", "Spliceable", "relay_spliced"]

CLOSE_TIMEOUT: Final = 5.0  # how long a closing handshake may take before TCP is dropped
IDLE_REASON: Final = "idle timeout"
RATE_REASON: Final = "message rate exceeded"
PING_TIMEOUT_REASON: Final = "keepalive ping timeout"
SERVICE_RESTART: Final = 1012  # RFC 6455 7.4.1: the server is restarting
POLICY_VIOLATION: Final = 1008
_MASKS: Final = MaskKeys()  # one process-wide source of masking keys


class _End(asyncio.Protocol):
    """One transport's protocol: hands everything to the splice, naming its side."""

    __slots__ = ("_client", "_splice")

    def __init__(self, splice: Splice, client: bool) -> None:
        self._splice = splice
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._splice.received(self._client, data)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self._splice.lost(self._client)

    def pause_writing(self) -> None:
        self._splice.hold(not self._client, True)

    def resume_writing(self) -> None:
        self._splice.hold(not self._client, False)


class Splice:
    """One relayed socket between ``client`` (after its 101) and ``upstream`` (after fal's)."""

    __slots__ = (
        "_allow",
        "_client",
        "_client_ping",
        "_closing",
        "_down",
        "_gone",
        "_held",
        "_last",
        "_limits",
        "_loop",
        "_readers",
        "_remask",
        "_stats",
        "_timers",
        "_up",
        "_upstream",
        "done",
        "ending",
    )

    def __init__(
        self,
        client: asyncio.Transport,
        upstream: asyncio.Transport,
        limits: WsLimits,
        stats: CallRecord,
        allow: MessageCheck | None = None,
        client_ping: tuple[float | None, float | None] = (None, None),
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = client
        self._upstream = upstream
        self._limits = limits
        self._stats = stats
        self._allow = allow
        self._client_ping = client_ping
        self._up: list[bytes] = []  # toward fal, gathered during one read
        self._down: list[bytes] = []  # toward the client
        self._remask = b""  # client key XOR ours, for the client frame in flight
        self._last = self._loop.time()  # the last data frame, either way
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._held = [
            set[str](),
            set[str](),
        ]  # why each side's reading is paused (0: up, 1: client)
        self._gone = [False, False]  # each side's connection is lost (0: up, 1: client)
        self._closing = [False, False]  # a close frame was sent to that side
        self.ending: Ending | None = None
        self.done: asyncio.Future[None] = self._loop.create_future()
        size = limits.max_message_bytes
        self._readers = (
            FrameReader(
                masked=False,
                max_message=size,
                on_data=self._down_data,
                on_payload=self._down_payload,
                on_control=self._upstream_control,
            ),
            FrameReader(
                masked=True,
                max_message=size,
                on_data=self._up_data,
                on_payload=self._up_payload,
                on_control=self._client_control,
            ),
        )

    def start(self, from_client: bytes, from_upstream: bytes) -> None:
        """Take both transports over; ``from_*``: frames that came with the handshakes."""
        self._client.set_protocol(_End(self, True))
        self._upstream.set_protocol(_End(self, False))
        limits = self._limits
        if limits.idle_timeout > 0:
            self._later("idle", limits.idle_timeout, self._idle)
        if limits.ping_interval > 0:  # 0: no keep-alive pings to fal
            self._later("ping", limits.ping_interval, self._ping_upstream)
        interval = self._client_ping[0]
        if interval:
            self._later("client-ping", interval, self._ping_client)
        if from_upstream:
            self.received(False, from_upstream)
        if from_client:
            self.received(True, from_client)
        for side, transport in enumerate((self._upstream, self._client)):
            if not self._held[side] and not transport.is_closing():
                transport.resume_reading()  # paused by the front end and the dialler

    # --- reading ----------------------------------------------------------------------------

    def received(self, client: bool, data: bytes) -> None:
        try:
            self._readers[client].feed(data)
        except FrameError as exc:
            self._fail(client, exc.code, exc.reason)
        self._flush()

    def _flush(self) -> None:
        if self._up:
            chunks, self._up = self._up, []
            if not self._upstream.is_closing():
                self._upstream.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self._down:
            chunks, self._down = self._down, []
            if not self._client.is_closing():
                self._client.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    # --- client -> fal ------------------------------------------------------------------------

    def _up_data(self, header: FrameHeader) -> None:
        if self.ending is not None:
            return
        self._last = self._loop.time()
        if header.opcode != CONTINUATION and self._allow is not None:
            self._check(header)  # relayed (and counted) once the rate allows it
            return
        self._up_header(header)

    def _up_header(self, header: FrameHeader) -> None:
        stats = self._stats
        stats.bytes_up += header.length
        if header.opcode != CONTINUATION:
            stats.frames_up += 1
        ours = _MASKS.next()
        assert header.mask is not None
        self._remask = (int.from_bytes(header.mask, "big") ^ int.from_bytes(ours, "big")).to_bytes(
            4, "big"
        )
        self._up.append(data_header(header.raw[0], header.length, ours))

    def _up_payload(self, piece: bytes, offset: int) -> None:
        if self.ending is not None:
            return
        key = self._remask
        if offset & 3:
            turn = offset & 3
            key = key[turn:] + key[:turn]
        self._up.append(apply_mask(piece, key))

    def _client_control(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            if not self._closing[1]:
                self._down.append(control_frame(PONG, payload, None))
        elif opcode == PONG:
            self._cancel("client-pong")
        elif opcode == CLOSE:
            code, reason = parse_close(payload)
            if self._closing[1]:  # the client's answer to our close: done with it
                self._client.close()
                return
            self._closing[1] = True
            self._down.append(close_frame(code, reason, None))  # RFC 6455 5.5.1: echo
            self._end(Ending("client", 1005 if code is None else code, reason))
            self._flush()
            self._client.close()  # the server closes TCP first (RFC 6455 7.1.1)

    # --- the message rate ------------------------------------------------------------------

    def _check(self, header: FrameHeader) -> None:
        """Start the rate check of the message ``header`` opens; hold the client until it
        answers (:meth:`_verdict`). Always in a task: a check may need one (Redis clients
        use ``asyncio.timeout``, which refuses to run outside a task)."""
        assert self._allow is not None
        self._readers[1].pause()
        self.hold(True, True, "rate")
        task = self._loop.create_task(_answer(self._allow()))
        task.add_done_callback(lambda done: self._verdict(done, header))

    def _verdict(self, done: asyncio.Task[bool], header: FrameHeader) -> None:
        allowed = not done.cancelled() and done.exception() is None and done.result()
        if self.ending is not None:
            return
        if not allowed:
            self._end(Ending("proxy", POLICY_VIOLATION, RATE_REASON))
            self._flush()
            return
        self._up_header(header)
        self.hold(True, False, "rate")  # before resuming: the next message may hold again
        try:
            self._readers[1].resume()
        except FrameError as exc:
            self._fail(True, exc.code, exc.reason)
        self._flush()

    # --- fal -> client --------------------------------------------------------------------

    def _down_data(self, header: FrameHeader) -> None:
        if self.ending is not None:
            return
        stats = self._stats
        stats.bytes_down += header.length
        if header.opcode != CONTINUATION:
            stats.frames_down += 1
        self._last = self._loop.time()
        self._down.append(header.raw)

    def _down_payload(self, piece: bytes, offset: int) -> None:
        if self.ending is None:
            self._down.append(piece)

    def _upstream_control(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            if not self._closing[0]:
                self._up.append(control_frame(PONG, payload, _MASKS.next()))
        elif opcode == PONG:
            self._cancel("pong")
        elif opcode == CLOSE:
            code, reason = parse_close(payload)
            if self._closing[0]:  # fal's answer to our close
                self._upstream.close()
                return
            self._closing[0] = True
            self._up.append(close_frame(code, reason, _MASKS.next()))  # echo
            self._end(Ending("upstream", 1005 if code is None else code, reason))
            self._flush()
            self._upstream.close()

    # --- ending -------------------------------------------------------------------------------

    def _fail(self, client: bool, code: int, reason: str) -> None:
        """A frame from one side broke a rule: tell it ``code`` and drop it."""
        self._readers[client].stop()
        self._send_close(client, code, reason)
        self._end(Ending("client" if client else "upstream", code, reason))
        self._flush()
        (self._client if client else self._upstream).close()

    def _end(self, ending: Ending) -> None:
        """The first ending decides; the other side (or both) hear the mapped close."""
        if self.ending is not None:
            return
        self.ending = ending
        code, reason = relayed_close(ending.code, ending.reason)
        self._stats.close_code = code
        self._stats.outcome = outcome_of(ending)
        if ending.side != "client":
            self._send_close(True, code, reason)
        if ending.side != "upstream":
            self._send_close(False, code, reason)
        for name in ("idle", "ping", "pong", "client-ping", "client-pong"):
            self._cancel(name)
        self._later("close", CLOSE_TIMEOUT, self._abort)

    def _send_close(self, client: bool, code: int, reason: str) -> None:
        if self._closing[client] or self._gone[client]:
            return
        self._closing[client] = True
        mask = None if client else _MASKS.next()
        (self._down if client else self._up).append(close_frame(code, reason, mask))

    def _abort(self) -> None:
        for gone, transport in zip(self._gone, (self._upstream, self._client), strict=True):
            if not gone:
                transport.abort()

    def lost(self, client: bool) -> None:
        self._gone[client] = True
        if self.ending is None:
            self._end(Ending("client" if client else "upstream", VANISHED))
            self._flush()
        other = self._upstream if client else self._client
        if self._closing[not client] is False and not other.is_closing():
            other.close()
        if all(self._gone):
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
            if not self.done.done():
                self.done.set_result(None)

    def shutdown(self) -> None:
        """Graceful shutdown of the server: both sides hear 1012, as the client did before."""
        self._send_close(True, SERVICE_RESTART, "server shutting down")
        self._end(Ending("client", SERVICE_RESTART, "server shutting down"))
        self._flush()

    def abort(self) -> None:
        """Drop both connections now (the session is being cancelled)."""
        self._client.abort()
        self._upstream.abort()

    # --- back-pressure ----------------------------------------------------------------------

    def hold(self, client: bool, paused: bool, why: str = "peer") -> None:
        """Pause (or resume) reading from one side; reading runs only with no reason left."""
        reasons = self._held[client]
        was = bool(reasons)
        if paused:
            reasons.add(why)
        else:
            reasons.discard(why)
        transport = self._client if client else self._upstream
        if was != bool(reasons) and not self._gone[client] and not transport.is_closing():
            if reasons:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # --- timers --------------------------------------------------------------------------------

    def _idle(self) -> None:
        remaining = self._last + self._limits.idle_timeout - self._loop.time()
        if remaining > 0:
            self._later("idle", remaining, self._idle)
            return
        self._end(Ending("proxy", NORMAL_CLOSE, IDLE_REASON))
        self._flush()

    def _ping_upstream(self) -> None:
        self._up.append(control_frame(PING, _MASKS.next(), _MASKS.next()))
        self._flush()
        if "pong" not in self._timers and self._limits.ping_timeout > 0:
            self._later("pong", self._limits.ping_timeout, self._upstream_deaf)
        self._later("ping", self._limits.ping_interval, self._ping_upstream)

    def _upstream_deaf(self) -> None:
        self._send_close(False, 1011, PING_TIMEOUT_REASON)
        self._end(Ending("upstream", 1011, PING_TIMEOUT_REASON))
        self._flush()
        self._upstream.abort()

    def _ping_client(self) -> None:
        interval, timeout = self._client_ping
        self._down.append(control_frame(PING, _MASKS.next(), None))
        self._flush()
        if timeout and "client-pong" not in self._timers:
            self._later("client-pong", timeout, self._client.abort)
        if interval:
            self._later("client-ping", interval, self._ping_client)

    def _later(self, name: str, delay: float, callback: Any) -> None:
        self._cancel(name)
        if not all(self._gone):
            self._timers[name] = self._loop.call_later(delay, callback)

    def _cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()


async def _answer(check: Awaitable[bool]) -> bool:
    return await check


class Spliceable(Protocol):
    """A front end's client socket that can give its transport to the frame relay."""

    transport: asyncio.Transport
    client_ping: tuple[float | None, float | None]  # (interval, timeout), or none

    def hand_over(self, splice: Splice) -> bytes:
        """Stop reading for itself; return the frames received after the 101 so far."""
        ...


async def relay_spliced(
    upstream: RawUpstream,
    client: Spliceable,
    limits: WsLimits,
    stats: CallRecord,
    allow: MessageCheck | None = None,
) -> None:
    """Relay frames between ``client`` and fal until both connections are gone."""
    splice = Splice(client.transport, upstream.transport, limits, stats, allow, client.client_ping)
    splice.start(client.hand_over(splice), upstream.rest)
    try:
        await asyncio.shield(splice.done)
    except asyncio.CancelledError:
        splice.abort()
        raise
