"""The operational endpoints every front end serves: ``/healthz``, ``/readyz``, ``/metrics``.

Paths come from the settings (``health_path``, ``ready_path``, ``metrics_path``). The
answers are plain :class:`~falproxy.core.answers.Answer` values, so the ASGI app, the
framework integrations and the WSGI adapter serve the very same responses.

``/metrics`` may be exposed on a public port by mistake, so ``FALPROXY_METRICS_TOKEN``
(when set) requires ``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from enum import Enum

from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.errors import MethodNotAllowed, ProxyError, Unauthorized
from falproxy.ops.metrics import METRICS_CONTENT_TYPE, ProxyMetrics
from falproxy.ops.readiness import Readiness, redis_ping

_READ_METHODS = frozenset({"GET", "HEAD"})
_BEARER = b"bearer "
# RFC 6750 section 3: what a client must send to read the metrics.
_CHALLENGE = {"www-authenticate": 'Bearer realm="metrics"'}


class Endpoint(Enum):
    HEALTH = "health"
    READY = "ready"
    METRICS = "metrics"


class OpsEndpoints:
    """Which paths are operational endpoints, and what they answer."""

    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics, readiness: Readiness) -> None:
        self.metrics = metrics
        self.readiness = readiness
        if config.redis_url:  # named in every /readyz answer; see ops/readiness.py
            required = not config.rate_limit_fail_open
            readiness.add_dependency("redis", redis_ping(config.redis_url), required=required)
        self.paths = {config.health_path: Endpoint.HEALTH, config.ready_path: Endpoint.READY}
        if config.metrics:
            self.paths[config.metrics_path] = Endpoint.METRICS
        self._token = config.metrics_token.encode() if config.metrics_token else None

    def match(self, path: str) -> Endpoint | None:
        """The endpoint served at ``path`` (relative to where the app is mounted), if any."""
        return self.paths.get(path)

    async def answer(
        self, endpoint: Endpoint, method: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> Answer:
        """The endpoint's answer; a refusal (405, 401) is an answer too."""
        try:
            return await self._answer(endpoint, method, headers)
        except ProxyError as refusal:
            return Answer.of_error(refusal)

    async def _answer(
        self, endpoint: Endpoint, method: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> Answer:
        if method not in _READ_METHODS:
            raise MethodNotAllowed(headers={"allow": "GET, HEAD"})
        if endpoint is Endpoint.HEALTH:
            return Answer.json(200, {"status": "ok"})
        if endpoint is Endpoint.READY:
            failing, states = await self.readiness.report()
            if failing:
                return Answer.json(503, {"status": "not ready", "failing": failing, **states})
            return Answer.json(200, {"status": "ready", **states})
        self._check_token(headers)
        return Answer.raw(200, self.metrics.exposition(), METRICS_CONTENT_TYPE.encode())

    def _check_token(self, headers: Iterable[tuple[bytes, bytes]]) -> None:
        if self._token is None:
            return
        for name, value in headers:
            if name != b"authorization" or value[: len(_BEARER)].lower() != _BEARER:
                continue
            if hmac.compare_digest(value[len(_BEARER) :].strip(), self._token):
                return
        raise Unauthorized("Reading the metrics needs the metrics token", headers=_CHALLENGE)
