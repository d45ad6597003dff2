"""uvicorn HTTP protocols that bound the request head in bytes and in time.

uvicorn's httptools protocol hands every received byte to the parser, which keeps an
unfinished header in memory however long it grows (the 64 KiB cap in ``core/head.py`` runs
only once the whole head has arrived), and neither protocol times the head: a client that
drips header bytes, or sends none, holds its connection forever (slowloris). These
subclasses count the bytes of each request head as they arrive and never feed the parser
past ``MAX_REQUEST_HEAD_BYTES`` (431, then the connection is closed), and close a
connection whose head is not complete ``header_timeout`` seconds after its first
incomplete piece arrived (or after the connection opened). Once the head is complete, both
protocols behave exactly as uvicorn's own; once a request upgrades the connection (a
WebSocket), the guard is disarmed for good: the socket's bounds are the relay's.

``falproxy serve`` runs :data:`GuardedHTTPProtocol` (httptools, what uvicorn's ``auto`` picks
with falproxy's dependencies) with ``header_timeout`` from ``FALPROXY_HEADER_TIMEOUT``. An embedder
passes ``--http falproxy.standalone.protocols:GuardedHTTPProtocol`` to uvicorn, or a
subclass with another ``header_timeout``.
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref
from collections.abc import Callable
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from falproxy.config.file import config_from_sources
from falproxy.core.errors import HeadersTooLarge
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES
from falproxy.standalone.capacity import PRESSED_HEAD_SECONDS, ConnectionCap, Shed, worker_cap
from falproxy.wire.writer import closing_answer

__all__ = [
    "GuardedH11Protocol",
    "GuardedHTTPProtocol",
    "GuardedHttpToolsProtocol",
    "HeadWatch",
    "configured_header_timeout",
    "refusal_bytes",
    "worker_connection_cap",
]


@functools.cache
def configured_header_timeout() -> float:
    """``header_timeout`` of this process's configuration (environment and config file).

    Read once per worker, from the same sources the worker's app is built from.
    """
    return config_from_sources(os.environ).header_timeout


@functools.cache
def configured_stall_timeout() -> float:
    """How long a client may leave written answers unread (the stream idle timeout)."""
    return config_from_sources(os.environ).stream_idle_timeout


_CAPS: weakref.WeakKeyDictionary[ServerState, ConnectionCap] = weakref.WeakKeyDictionary()


def worker_connection_cap(server_state: ServerState) -> ConnectionCap:
    """The connection cap of the uvicorn server owning ``server_state`` (one per worker)."""
    cap = _CAPS.get(server_state)
    if cap is None:
        configured = config_from_sources(os.environ).max_connections
        cap = _CAPS[server_state] = ConnectionCap(worker_cap(configured))
    return cap


def refusal_bytes() -> bytes:
    """A complete 431 response with the usual JSON detail, closing the connection."""
    error = HeadersTooLarge()
    return closing_answer(error.status, error.response_headers(), error.body())


class HeadWatch:
    """The head of one connection's current request: its bytes so far and its deadline."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: float, on_timeout: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None
        self.received = 0

    def start(self, seconds: float | None = None) -> None:
        """A head is under way: arm its deadline (``seconds``, else the configured
        timeout) unless already armed."""
        if self._timer is None:
            timeout = self._timeout if seconds is None else seconds
            self._timer = self._loop.call_later(timeout, self._on_timeout)

    def room(self) -> int:
        """How many more head bytes may be read before the head is too large."""
        return MAX_REQUEST_HEAD_BYTES - self.received

    def done(self) -> None:
        """The head is complete (or the connection is gone): disarm and reset."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.received = 0


class _Guard:
    """The shared part of both protocols; mixed in before uvicorn's class."""

    header_timeout: ClassVar[float | None] = None  # None: FALPROXY_HEADER_TIMEOUT
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    _head: HeadWatch

    server_state: ServerState
    flow: Any  # uvicorn's FlowControl
    _cap: ConnectionCap
    _head_seconds: float
    _paused_for_write: bool
    _stalled: asyncio.TimerHandle | None

    def _init_guard(self) -> None:
        timeout = self.header_timeout
        if timeout is None:
            timeout = configured_header_timeout()
        self._head_seconds = timeout
        self._head = HeadWatch(self.loop, timeout, self._head_timed_out)
        self._cap = worker_connection_cap(self.server_state)
        self._paused_for_write = False
        self._stalled = None

    def _admit(self) -> None:
        """Take a place under the connection cap (shedding a headless one), or drop this."""
        try:
            self._cap.admit(self, self._shed)
        except Shed:
            self.transport.abort()
            return
        self._arm_head()

    def _arm_head(self) -> None:
        seconds = PRESSED_HEAD_SECONDS if self._cap.pressed else self._head_seconds
        self._head.start(min(seconds, self._head_seconds))

    def _shed(self) -> None:
        self._head.done()
        if not self.transport.is_closing():
            self.transport.close()

    # Flow control: a client that does not read its responses is not read from either, so
    # pipelined requests wait in its own socket buffers instead of the proxy's memory, and
    # one that reads nothing for the stream idle timeout is dropped.
    def _write_blocked(self) -> None:
        if not self._paused_for_write:
            self._paused_for_write = True
            self.flow.pause_reading()
            self._stalled = self.loop.call_later(configured_stall_timeout(), self._drop_stalled)

    def _write_unblocked(self) -> None:
        if self._paused_for_write:
            self._paused_for_write = False
            self.flow.resume_reading()
            self._cancel_stall()

    def _cancel_stall(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    def _drop_stalled(self) -> None:
        self._stalled = None
        if self._paused_for_write:
            self.transport.abort()

    # uvicorn's protocol hooks, extended (the mixin comes first in the MRO).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._admit()  # and a connection that never sends a byte is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._head.done()
        self._cancel_stall()
        self._cap.leave(self)
        super().connection_lost(exc)  # type: ignore[misc]

    def pause_writing(self) -> None:
        super().pause_writing()  # type: ignore[misc]
        self._write_blocked()

    def resume_writing(self) -> None:
        super().resume_writing()  # type: ignore[misc]
        self._write_unblocked()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._cap.headless(self, self._shed)
        if self.flow.write_paused:
            self._write_blocked()

    def _awaiting_head(self) -> bool:
        raise NotImplementedError

    def _feed(self, data: bytes) -> None:
        raise NotImplementedError

    def _guarded_data_received(self, data: bytes) -> None:
        """Feed ``data``, never letting an unfinished head grow past the cap."""
        while data and not self.transport.is_closing():
            if not self._awaiting_head():
                self._feed(data)
                return
            room = self._head.room()
            if room <= 0:
                self._refuse_head()
                return
            piece, data = data[:room], data[room:]
            self._head.received += len(piece)
            self._feed(piece)
            if self._upgraded():
                # The connection now belongs to the WebSocket protocol: a relayed socket
                # lives for minutes and is bounded by the relay's own timeouts, never by
                # the head deadline of the request that opened it (issue 18, hole 0).
                self._head.done()
                return
            if not self._awaiting_head():
                self._head.done()
                self._cap.busy(self)
            elif not self.transport.is_closing():
                # Still unfinished: time it from now. A head that arrives whole (the usual
                # case, one packet) never arms a timer, so keep-alive calls pay nothing.
                self._arm_head()

    def _upgraded(self) -> bool:
        """Whether uvicorn gave the transport to its WebSocket protocol (an upgrade)."""
        current: object = self.transport.get_protocol()
        return current is not self

    def _refuse_head(self) -> None:
        self._head.done()
        self.transport.write(refusal_bytes())
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._head.done()
        if self._upgraded() or not self._awaiting_head() or self.transport.is_closing():
            return
        self.transport.close()  # like nginx's client_header_timeout: no answer, just close


class GuardedH11Protocol(_Guard, H11Protocol):
    """uvicorn's h11 protocol with the head capped in bytes and in time.

    h11 itself refuses heads over its own ``h11_max_incomplete_event_size`` (16 KiB by
    default) with 400; this adds the deadline, and the same 64 KiB cap if that is raised.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()

    def data_received(self, data: bytes) -> None:
        self._guarded_data_received(data)

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _feed(self, data: bytes) -> None:
        super().data_received(data)


class GuardedHttpToolsProtocol(_Guard, HttpToolsProtocol):
    """uvicorn's httptools protocol with the head capped in bytes and in time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_guard()
        self._in_head = True  # from a message's first byte until its headers are parsed

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.flow.write_paused and self.pipeline:
            # uvicorn resumes reading after every response, even with requests still
            # queued: each read would add thousands more. Read on once the queue is empty.
            self.flow.pause_reading()

    def data_received(self, data: bytes) -> None:
        self._guarded_data_received(data)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head.done()
        self._cap.busy(self)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # the next bytes are the next request's head

    def _awaiting_head(self) -> bool:
        return self._in_head

    def _feed(self, data: bytes) -> None:
        super().data_received(data)


# What `falproxy serve` runs: httptools, which uvicorn's "auto" picks and which falproxy's
# uvicorn[standard] dependency installs; the h11 class is there for embedders who pin h11.
GuardedHTTPProtocol = GuardedHttpToolsProtocol
