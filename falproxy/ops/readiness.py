"""Readiness: whether this process should be sent new traffic (``/readyz``).

Liveness (``/healthz``) answers "is the process alive"; a failing liveness probe gets the
process restarted. Readiness answers "should the load balancer send calls here"; a process
that is draining after SIGTERM, or whose required Redis is unreachable, is alive but not
ready. Confusing the two restarts healthy pods when Redis blips, so they are separate.

SIGTERM drains the whole process (every proxy served in it), so the drain flag is one
per process, set by :func:`begin_process_drain` from the server's signal handler; a proxy
embedded in another app can also be drained alone with :meth:`Readiness.begin_drain`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable

import anyio

logger = logging.getLogger("falproxy")

ReadinessCheck = Callable[[], Awaitable[bool]]
# A check that takes longer than this is a failing check: a probe must answer promptly.
CHECK_TIMEOUT_SECONDS = 2.0
DRAINING = "draining"

_process_draining = threading.Event()


def begin_process_drain() -> None:
    """Mark this process as draining: every ``/readyz`` in it answers 503 from now on."""
    _process_draining.set()


class Readiness:
    """The draining flag and the named checks behind ``/readyz``."""

    def __init__(self) -> None:
        self._draining = False
        self._checks: dict[str, ReadinessCheck] = {}

    @property
    def draining(self) -> bool:
        return self._draining or _process_draining.is_set()

    def begin_drain(self) -> None:
        """Stop reporting ready (this proxy only); in-flight calls go on."""
        self._draining = True

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Register ``check``: ``/readyz`` fails while it returns false, raises or hangs."""
        self._checks[name] = check

    async def failures(self) -> list[str]:
        """Why this process is not ready; empty when it is."""
        if self.draining:
            return [DRAINING]
        failed = []
        for name, check in self._checks.items():
            if not await _passes(name, check):
                failed.append(name)
        return failed


async def _passes(name: str, check: ReadinessCheck) -> bool:
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            return bool(await check())
    except Exception as exc:  # a readiness check must never take the endpoint down
        logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return False
