"""``ProxyBase``: everything a front end shares, built once from the settings.

The ASGI app and the WSGI adapter differ only in their I/O (and their upstream client);
the settings, the admission pipeline, the call log, the metrics, readiness and the
operational endpoints are the same objects built the same way, here — the way httpx's
``BaseClient`` holds what its sync and async clients share.
"""

from __future__ import annotations

from falproxy.admission.pipeline import Pipeline
from falproxy.config.fake_mode import announce_fake_mode, with_fake_mode
from falproxy.config.settings import ProxyConfig
from falproxy.core.policy import Policy
from falproxy.ops.calls import CallLog
from falproxy.ops.endpoints import OpsEndpoints
from falproxy.ops.metrics import ProxyMetrics
from falproxy.ops.readiness import Readiness, ReadinessCheck
from falproxy.ops.tracing import tracing_from_env


class ProxyBase:
    """The settings-derived parts of one proxy, whatever serves it."""

    def __init__(self, config: ProxyConfig | None = None) -> None:
        # FALPROXY_FAKE_URL: every fal host to that fake, with its key (config/fake_mode.py).
        # Built from the environment, a mistake is one line and exit 4, as in ProxyConfig.load().
        self.config = with_fake_mode(config if config is not None else ProxyConfig.load())
        self.config.require_credential()
        announce_fake_mode(self.config.fake_url)
        self.metrics = ProxyMetrics()
        self.readiness = Readiness()
        self.pipeline = Pipeline(self.config, self.metrics)
        # Tracing is off unless OTEL_* variables or the application set it up.
        self.calls = CallLog(self.config, self.metrics, tracing_from_env())
        self.ops = OpsEndpoints(self.config, self.metrics, self.readiness)
        if self.pipeline.requests.store is not None and self.config.redis_url:
            # Ownership and budgets fail closed without Redis: not ready while it is down.
            self.readiness.add_check("redis", self.pipeline.requests.ready)

    @property
    def policy(self) -> Policy:
        """The compiled allow-lists (for hooks and tests that inspect them)."""
        return self.pipeline.policy

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """``/readyz`` answers 503 while ``check`` returns false (e.g. Redis unreachable)."""
        self.readiness.add_check(name, check)
