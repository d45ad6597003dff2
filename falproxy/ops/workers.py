"""Several uvicorn workers are one service: shared metrics, and honest rate limits.

``falproxy serve --workers N`` forks N processes that each hold their own memory. Two
things must not silently split with them:
- ``/metrics``: each worker would report its own counters, so successive scrapes through
  one port would alternate between workers' numbers. The serving parent gives the
  workers one fresh directory for prometheus_client's multiprocess mode; any worker's
  scrape sums every worker's files.
- in-memory rate limits: each worker would count its own budget, letting N times the
  limit through. Start-up refuses that unless the limits live in Redis or the user opts
  in to per-worker limits.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path

from falproxy.config.budgets import ownership_enabled
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import ConfigError
from falproxy.ops.metrics import MULTIPROC_DIR_ENV


def check_worker_limits(config: ProxyConfig, workers: int) -> None:
    """Refuse N workers counting N separate budgets, unless asked for.

    Rate limits and the message rate are shared through Redis when it is set; open
    sockets are always counted per process (a socket lives in one worker), so a socket
    cap with several workers is N times the cap whatever the storage.
    """
    if workers <= 1 or config.per_worker_limits:
        return
    shared = bool(config.redis_url)
    per_worker = [
        name
        for name, value, in_redis in (
            ("FALPROXY_RATE_LIMIT", config.rate_limits, True),
            ("FALPROXY_WS_MESSAGE_RATE", config.ws_message_rate, True),
            ("FALPROXY_WS_MAX_SOCKETS", config.ws_max_sockets, False),
            ("FALPROXY_SPEND_LIMIT", config.spend_limits, True),
            ("FALPROXY_REQUEST_OWNERSHIP", ownership_enabled(config), True),
        )
        if value and not (shared and in_redis)
    ]
    if not per_worker:
        return
    remedy = (
        "run one worker per process and cap sockets per replica"
        if shared
        else "set FALPROXY_REDIS_URL to share them"
    )
    raise ConfigError(
        f"--workers {workers} would give each worker its own budget for "
        f"{', '.join(per_worker)} ({workers}x the limit): {remedy}, or set "
        "FALPROXY_PER_WORKER_LIMITS=true to accept per-worker limits"
    )


@contextmanager
def shared_metrics(workers: int, env: MutableMapping[str, str]) -> Iterator[str | None]:
    """In the serving parent: a clean multiprocess metrics directory for N > 1 workers.

    A directory the user named in ``PROMETHEUS_MULTIPROC_DIR`` is emptied of old worker
    files (stale pids would add a previous run's counts) and kept; otherwise a private
    temporary directory is created and removed when serving ends. Yields the directory,
    or ``None`` for a single worker (which keeps its ordinary in-process registry).
    """
    if workers <= 1:
        yield None
        return
    named = env.get(MULTIPROC_DIR_ENV)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield str(directory)
        return
    created = tempfile.mkdtemp(prefix="falproxy-metrics-")
    env[MULTIPROC_DIR_ENV] = created
    try:
        yield created
    finally:
        env.pop(MULTIPROC_DIR_ENV, None)
        shutil.rmtree(created, ignore_errors=True)
