"""Idle keep-alive connections per origin: bounded, expired when idle, never stale.

A connection enters the pool only after a complete, well-framed response with keep-alive
(:attr:`UpstreamConnection.reusable`) and waits there ``IDLE``
(:attr:`UpstreamConnection.usable`). While idle it is closed after ``idle_seconds``; if
the upstream closes it first, ``connection_lost`` takes it out at once, and
:meth:`Pool.take` checks it again before handing it out.

The idle timer is armed when a connection first enters the pool and left running while
it is taken and put back: when it fires it measures the connection's idle time since its
last return and re-arms for the rest, so a busy connection costs no timer per call.
"""

from __future__ import annotations

import asyncio

from falproxy.client.connection import UpstreamConnection
from falproxy.client.request import Origin


class Pool:
    """Idle connections per ``(scheme, host, port)``, at most ``max_idle`` in all."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, *, max_idle: int, idle_seconds: float
    ) -> None:
        self.loop = loop
        self._idle: dict[Origin, list[UpstreamConnection]] = {}
        self._count = 0
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds

    @property
    def idle_count(self) -> int:
        return self._count

    def take(self, origin: Origin) -> UpstreamConnection | None:
        """The most recently used idle connection to ``origin`` that is still good."""
        stack = self._idle.get(origin)
        while stack:
            conn = stack.pop()
            self._leave(conn)
            if conn.usable:
                return conn
            conn.close()
        return None

    def put(self, conn: UpstreamConnection) -> None:
        """Keep ``conn`` for a later call, or close it when the pool is full."""
        if self._count >= self.max_idle or not conn.reusable:
            conn.close()
            return
        conn.recycle()
        self._idle.setdefault(conn.origin, []).append(conn)
        self._count += 1
        conn.on_lost = self._discard  # set only while it is idle here
        conn.idle_since = self.loop.time()
        if conn.idle_timer is None:
            conn.idle_timer = self.loop.call_later(self.idle_seconds, self._expire, conn)

    def close_all(self) -> None:
        for stack in list(self._idle.values()):
            for conn in list(stack):
                self._discard(conn)
                conn.close()
        self._idle.clear()

    def _leave(self, conn: UpstreamConnection) -> None:
        self._count -= 1
        conn.on_lost = None  # its idle timer runs on (see the module docstring)

    def _discard(self, conn: UpstreamConnection) -> None:
        stack = self._idle.get(conn.origin)
        if stack and conn in stack:
            stack.remove(conn)
            self._leave(conn)
            if not stack:
                del self._idle[conn.origin]

    def _expire(self, conn: UpstreamConnection) -> None:
        conn.idle_timer = None
        if conn.on_lost is None:
            return  # in use (or closed): armed again when it comes back
        left = conn.idle_since + self.idle_seconds - self.loop.time()
        if left > 0:
            conn.idle_timer = self.loop.call_later(left, self._expire, conn)
            return
        self._discard(conn)
        conn.close()
