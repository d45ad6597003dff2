"""Readiness: whether this process should be sent new traffic (``/readyz``).

Liveness (``/healthz``) answers "is the process alive"; a failing liveness probe gets the
process restarted. Readiness answers "should the load balancer send calls here"; a process
that is draining after SIGTERM, or whose required Redis is unreachable, is alive but not
ready. Confusing the two restarts healthy pods when Redis blips, so they are separate.

Redis, when ``FALPROXY_REDIS_URL`` is set, is a dependency every answer names (``"redis":
"ok"`` or ``"unreachable"``). Whether it also fails readiness follows
``FALPROXY_RATE_LIMIT_FAIL_OPEN``: failing closed, a process without Redis refuses every
rate-limited call, so it is not ready; failing open (the default), it still serves, and
since every replica shares the one Redis, a 503 from all of them at once would turn a
degraded limiter into the outage that failing open was chosen to avoid, so it stays ready.

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
# A dependency's state as /readyz reports it.
UP, DOWN = "ok", "unreachable"
# A PING that takes longer than this is an unreachable Redis (the limiter's own bound).
REDIS_PING_TIMEOUT = 0.5
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
        # Dependencies every answer reports, and whether each one's failure fails readiness.
        self._dependencies: dict[str, tuple[ReadinessCheck, bool]] = {}

    @property
    def draining(self) -> bool:
        return self._draining or _process_draining.is_set()

    def begin_drain(self) -> None:
        """Stop reporting ready (this proxy only); in-flight calls go on."""
        self._draining = True

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Register ``check``: ``/readyz`` fails while it returns false, raises or hangs."""
        self._checks[name] = check

    def add_dependency(self, name: str, check: ReadinessCheck, *, required: bool) -> None:
        """Report ``name`` as ``ok``/``unreachable`` in every answer; ``required``: a
        failure also makes ``/readyz`` 503, naming it among the failing checks."""
        self._dependencies[name] = (check, required)

    async def failures(self) -> list[str]:
        """Why this process is not ready; empty when it is."""
        return (await self.report())[0]

    async def report(self) -> tuple[list[str], dict[str, str]]:
        """Why this process is not ready (empty when it is), and each dependency's state."""
        states = {}
        failed = [DRAINING] if self.draining else []
        for name, (check, required) in self._dependencies.items():
            states[name] = UP if await _passes(name, check) else DOWN
            if required and states[name] == DOWN and not self.draining:
                failed.append(name)
        if self.draining:
            return failed, states
        for name, check in self._checks.items():
            if not await _passes(name, check):
                failed.append(name)
        return failed, states


def redis_ping(url: str) -> ReadinessCheck:
    """A check that Redis at ``url`` (the limiter's storage URL) answers PING, bounded.

    Each probe opens its own connection through ``limits`` (as the rate limiter does) and
    closes it, so no pooled socket outlives the event loop that ran the probe.
    """
    from limits.aio.storage import RedisStorage

    async def ping() -> bool:
        storage = RedisStorage(
            url,
            implementation="redispy",
            socket_timeout=REDIS_PING_TIMEOUT,
            socket_connect_timeout=REDIS_PING_TIMEOUT,
        )
        try:
            return bool(await storage.check())
        finally:  # limits has no public close (see admission/ratelimit.py's aclose)
            client = getattr(getattr(storage, "bridge", None), "storage", None)
            close = getattr(client, "aclose", None)
            if close is not None:
                await close()

    return ping


async def _passes(name: str, check: ReadinessCheck) -> bool:
    try:
        with anyio.fail_after(CHECK_TIMEOUT_SECONDS):
            return bool(await check())
    except Exception as exc:  # a readiness check must never take the endpoint down
        logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return False
