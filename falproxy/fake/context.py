"""Everything one fake instance knows: its settings and its in-memory stores.

Handlers receive this object instead of reaching for globals, so two fakes in one process
(e.g. one per test) never share state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from starlette.requests import Request

from .auth import authorize
from .billing import Billing
from .queue import QueueStore
from .stats import Stats
from .storage import Storage
from .tokens import TokenStore
from .urls import self_base

KEEPALIVE_SECONDS = 15.0  # fal's SSE keep-alive comment interval (docs/fal-protocol.md §7.3)
MIN_KEEPALIVE = 0.05


@dataclass
class FakeContext:
    """Settings plus stores of one fake instance."""

    speed: float = 1.0
    expected_key: str | None = None
    public_url: str | None = None
    keepalive_seconds: float | None = None
    stats: Stats = field(default_factory=Stats)
    tokens: TokenStore = field(default_factory=TokenStore)
    storage: Storage = field(default_factory=Storage)
    billing: Billing = field(default_factory=Billing)
    queue: QueueStore = field(init=False)

    def __post_init__(self) -> None:
        if not math.isfinite(self.speed) or self.speed < 0:
            raise ValueError("speed must be a finite number >= 0")
        if self.expected_key is not None and not self.expected_key.strip():
            raise ValueError("expected_key must not be blank")
        self.queue = QueueStore(self.speed)

    @property
    def keepalive(self) -> float:
        """Seconds between SSE keep-alive comments: fal's 15 s scaled by speed."""
        if self.keepalive_seconds is not None:
            return max(MIN_KEEPALIVE, self.keepalive_seconds)
        scaled = KEEPALIVE_SECONDS * self.speed if self.speed else KEEPALIVE_SECONDS
        return max(MIN_KEEPALIVE, scaled)

    def delay(self, nominal: float) -> float:
        """A nominal delay scaled by speed (0 when speed is 0)."""
        return nominal * self.speed

    def base_url(self, request: Request) -> str:
        """The fake's own base URL for links in responses."""
        return self_base(request, self.public_url)

    def authorize(self, request: Request, alias: str | None, *, tokens: bool = True) -> None:
        """Raise 401 unless the request is allowed; see :func:`auth.authorize`."""
        authorize(request, self.expected_key, self.tokens if tokens else None, alias)

    def reset(self) -> None:
        """Forget requests, tokens, files and history."""
        self.stats.reset()
        self.tokens.clear()
        self.storage.clear()
        self.queue.clear()
        self.billing.clear()
