"""The connection cap of one ``falproxy serve`` worker, and who is shed when it is reached.

Every accepted connection holds a file descriptor (and, while a call runs, a second one
upstream). Past the process's descriptor limit ``accept()`` fails and asyncio stops
accepting for a second at a time, so a few hundred silent sockets would keep every real
client out. The cap keeps the count below that limit, and when it is reached the
connections that have not delivered a complete request head (new, idle between requests,
or dripping a head), or whose client does not read a finished answer, are closed first,
oldest first; a connection carrying a call is never shed. From three quarters of the cap
on, a head must arrive within :data:`PRESSED_HEAD_SECONDS`, so sockets held open by an
attacker turn over quickly while a real client's head (one packet) is unaffected.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from typing import Final

# A head must arrive this fast while the worker is near its cap.
PRESSED_HEAD_SECONDS: Final = 2.0
# Descriptors kept for everything but client connections: the listening socket, log
# files, Redis, the fake, and the upstream pool's idle connections.
RESERVED_DESCRIPTORS: Final = 64 + 256
# Used when the descriptor limit cannot be read (no such limit on the platform).
DEFAULT_MAX_CONNECTIONS: Final = 4096
MAX_CONNECTIONS_ENV: Final = "FALPROXY_MAX_CONNECTIONS"


class Shed(Exception):
    """Raised by :meth:`ConnectionCap.admit` when a new connection cannot be kept."""


class ConnectionCap:
    """Open connections of one worker, and the order in which headless ones are shed.

    A connection registers with a ``close`` callback; it reports whether it is
    *headless* (no complete request head delivered and no call running) whenever that
    changes. Dicts keep insertion order, so the first headless entry is the oldest.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: set[object] = set()
        self._headless: dict[object, Callable[[], None]] = {}
        self.shed = 0  # connections closed to make room (for the metrics and tests)

    @property
    def count(self) -> int:
        return len(self._open)

    @property
    def pressed(self) -> bool:
        """Near the cap: heads get :data:`PRESSED_HEAD_SECONDS`."""
        return len(self._open) * 4 >= self.limit * 3

    def admit(self, conn: object, close: Callable[[], None]) -> None:
        """Register a new (headless) connection, shedding the oldest headless one if full."""
        if len(self._open) >= self.limit:
            if not self._headless:
                raise Shed()
            oldest = next(iter(self._headless))
            shed = self._headless.pop(oldest)
            self._open.discard(oldest)
            self.shed += 1
            shed()
        self._open.add(conn)
        self._headless[conn] = close

    def headless(self, conn: object, close: Callable[[], None]) -> None:
        """``conn`` waits for a head again (between requests): it may be shed, last."""
        if conn in self._open:
            self._headless.pop(conn, None)
            self._headless[conn] = close

    def busy(self, conn: object) -> None:
        """``conn`` delivered a head: it is serving a call and is never shed."""
        self._headless.pop(conn, None)

    def leave(self, conn: object) -> None:
        self._open.discard(conn)
        self._headless.pop(conn, None)


def descriptor_limit() -> int | None:
    """The soft limit on open files, raised to the hard limit when it is lower."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (OSError, ValueError):
            pass
    return None if soft == resource.RLIM_INFINITY else soft


def connections_for(limit: int | None) -> int:
    """The most client connections a descriptor ``limit`` allows (each may hold an
    upstream connection too)."""
    if limit is None:
        return DEFAULT_MAX_CONNECTIONS
    return max(1, (limit - RESERVED_DESCRIPTORS) // 2)


def worker_cap(configured: int | None) -> int:
    """The cap of this worker: the configured one, or what the descriptor limit allows.

    A configured cap the limit cannot honour is refused at start by
    :func:`check_cap` (the command line runs it before any worker starts).
    """
    return configured if configured is not None else connections_for(descriptor_limit())


def check_cap(configured: int | None) -> str | None:
    """Why ``configured`` cannot be honoured here, or None (run at start-up)."""
    if configured is None:
        return None
    allowed = connections_for(descriptor_limit())
    if configured > allowed:
        needed = 2 * configured + RESERVED_DESCRIPTORS
        return (
            f"{MAX_CONNECTIONS_ENV}={configured} needs about {needed} open files but the "
            f"limit allows {allowed} connections: raise `ulimit -n` "
            f"(LimitNOFILE, the container's nofile) or lower {MAX_CONNECTIONS_ENV}"
        )
    return None
