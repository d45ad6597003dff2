"""``ProxyConfig``: every setting of a proxy in one frozen value.

Build it in code, or with :meth:`ProxyConfig.from_env`, the only place in falproxy that
reads ``os.environ``. Everything is validated here, at start-up, so a bad setting stops
the process with one clear line instead of failing on the first request.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from falproxy.admission.ratelimit import RateLimit, parse_rate_limits
from falproxy.admission.ws_limits import check_message_rate
from falproxy.config.checks import check_hook_settings, mask_url, parse_bool
from falproxy.core.errors import ConfigError
from falproxy.core.hooks import Authenticate, BeforeRequest, OnEvent, ResolveKey
from falproxy.core.keys import FalCredential, credential_from_env
from falproxy.core.policy import DEFAULT_ALLOWED_URLS, Policy
from falproxy.core.targets import ALLOWED_HOSTS

DEFAULT_ROUTE = "/api/fal/proxy"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024  # generous for data-URI inputs; uploads go direct
DEFAULT_CONNECT_TIMEOUT = 10.0
# Sync `fal.run` calls answer only when inference ends, so waiting for headers is long.
DEFAULT_UPSTREAM_TIMEOUT = 300.0
# fal sends an SSE keep-alive every 15 s; a stream quiet for this long is dead.
DEFAULT_STREAM_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_TOKEN_EXPIRATION = 300
# WebSocket relay: a 5 MB canvas frame fits; matches uvicorn's own ws_max_size default.
DEFAULT_WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# A relayed socket with no data frame either way for this long is closed (pings do not count).
DEFAULT_WS_IDLE_TIMEOUT = 300.0
# Keep-alive pings to fal, and how long a pong may take before the upstream counts as dead.
DEFAULT_WS_PING_INTERVAL = 20.0
DEFAULT_WS_PING_TIMEOUT = 20.0
# Frames fal may have buffered in the relay before it stops reading from fal (back-pressure).
DEFAULT_WS_MAX_QUEUE = 16
# Kubernetes kills a pod 30 s after SIGTERM; draining must end before that.
DEFAULT_SHUTDOWN_GRACE = 25.0
# A client may pause this long between two chunks of its request body (slow-drip defence).
DEFAULT_BODY_TIMEOUT = 30.0
# A whole request body must arrive within this, however steadily it drips.
DEFAULT_BODY_DEADLINE = 300.0
# A request head (request line and headers) must be complete within this (slowloris).
DEFAULT_HEADER_TIMEOUT = 10.0
# How long a key fetched from a JWKS URL is trusted before the set is fetched again.
DEFAULT_JWKS_CACHE_SECONDS = 300.0
# Anonymous IPv6 callers share a budget per prefix of this length (a host holds a /64).
DEFAULT_IPV6_PREFIX = 64
DEFAULT_HEALTH_PATH = "/healthz"
DEFAULT_READY_PATH = "/readyz"
DEFAULT_METRICS_PATH = "/metrics"


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """Settings of one proxy; immutable, validated on construction."""

    credential: FalCredential | None = None
    route: str = DEFAULT_ROUTE
    allowed_urls: tuple[str, ...] = DEFAULT_ALLOWED_URLS
    allowed_endpoints: tuple[str, ...] = ()
    upstreams: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    stream_idle_timeout: float = DEFAULT_STREAM_IDLE_TIMEOUT
    max_token_expiration: int = DEFAULT_MAX_TOKEN_EXPIRATION
    ws_max_message_bytes: int = DEFAULT_WS_MAX_MESSAGE_BYTES
    ws_idle_timeout: float = DEFAULT_WS_IDLE_TIMEOUT
    ws_ping_interval: float = DEFAULT_WS_PING_INTERVAL
    ws_ping_timeout: float = DEFAULT_WS_PING_TIMEOUT
    ws_max_queue: int = DEFAULT_WS_MAX_QUEUE
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    # Identity, limits, metrics, CORS and hooks (see hooks.py); secrets kept out of repr.
    auth_tokens: tuple[str, ...] = field(default=(), repr=False)
    jwt_secret: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    allow_anonymous: bool = False
    rate_limits: tuple[RateLimit, ...] = ()
    redis_url: str | None = field(default=None, repr=False)
    rate_limit_fail_open: bool = True
    trusted_proxies: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    access_log_format: str = "text"
    metrics: bool = True
    authenticate: tuple[Authenticate, ...] = ()
    before_request: tuple[BeforeRequest, ...] = ()
    resolve_key: tuple[ResolveKey, ...] = ()
    on_event: tuple[OnEvent, ...] = ()
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    body_deadline: float = DEFAULT_BODY_DEADLINE
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    # Operational endpoints, and the bearer token /metrics requires when set.
    health_path: str = DEFAULT_HEALTH_PATH
    ready_path: str = DEFAULT_READY_PATH
    metrics_path: str = DEFAULT_METRICS_PATH
    metrics_token: str | None = field(default=None, repr=False)
    jwks_cache_seconds: float = DEFAULT_JWKS_CACHE_SECONDS
    token_minting: bool = True
    ipv6_prefix: int = DEFAULT_IPV6_PREFIX
    # Per identity across its sockets: frames client->fal ("10/second"), and open sockets.
    ws_message_rate: str | None = None
    ws_max_sockets: int | None = None
    # Host header values served; empty: loopback names when bound to loopback, else any.
    allowed_hosts: tuple[str, ...] = ()
    # In-memory rate limits with several workers count per worker; only on explicit request.
    per_worker_limits: bool = False
    # One format for every log line falproxy and uvicorn print: "text" or "json".
    log_format: str = "text"
    # A running fake fal (`falproxy fake`) to send every call to, with the fake's key.
    fake_url: str | None = None

    def __post_init__(self) -> None:
        if not self.route.startswith("/") or "?" in self.route or "#" in self.route:
            raise ConfigError("route must be an absolute path such as /api/fal/proxy")
        _check_policy(self)
        object.__setattr__(self, "upstreams", dict(self.upstreams))
        for host, base in self.upstreams.items():
            _check_upstream(host, base)
        _check_positive("max_body_bytes", self.max_body_bytes)
        _check_positive("max_token_expiration", self.max_token_expiration)
        for name in _POSITIVE_SETTINGS:
            _check_positive(name, getattr(self, name))
        for name in ("health_path", "ready_path", "metrics_path"):
            _check_path(name, getattr(self, name))
        if not 1 <= self.ipv6_prefix <= 128 or isinstance(self.ipv6_prefix, bool):
            raise ConfigError("ipv6_prefix must be a prefix length between 1 and 128")
        if self.ws_max_sockets is not None:
            _check_positive("ws_max_sockets", self.ws_max_sockets)
        if self.ws_message_rate is not None:
            check_message_rate(self.ws_message_rate)
        for name in _WS_POSITIVE_SETTINGS:
            _check_positive(name, getattr(self, name))
        _check_positive("shutdown_grace", self.shutdown_grace)
        check_hook_settings(self)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, base: Mapping[str, object] | None = None
    ) -> ProxyConfig:
        """Read ``FAL_KEY`` (or ``FAL_KEY_ID``/``FAL_KEY_SECRET``) and ``FALPROXY_*``.

        ``base`` holds settings from a configuration file; the environment overrides them.
        """
        env = os.environ if env is None else env
        settings: dict[str, object] = {"credential": None, **(base or {})}
        credential = credential_from_env(env)
        if credential is not None:
            settings["credential"] = credential
        for name, (variable, parse) in _ENV_SETTINGS.items():
            raw = env.get(variable)
            if raw is not None and raw.strip():
                settings[name] = parse(variable, raw)
        return cls(**settings)  # type: ignore[arg-type]

    def policy(self) -> Policy:
        """The compiled allow-lists of this configuration (validated at construction)."""
        return Policy(self.allowed_urls, self.allowed_endpoints, self.max_token_expiration)

    def require_credential(self) -> FalCredential:
        """The fal key, or the start-up error that names both ways to set it."""
        if self.credential is None:
            raise ConfigError("no fal credential: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)")
        return self.credential

    def describe(self) -> dict[str, object]:
        """The effective settings for display, with the key masked."""
        return {
            "credential": self.credential.masked() if self.credential else None,
            "route": self.route,
            "allowed_urls": list(self.allowed_urls),
            "allowed_endpoints": list(self.allowed_endpoints) or "all (no endpoint allow-list)",
            "upstreams": dict(self.upstreams),
            "max_body_bytes": self.max_body_bytes,
            "max_token_expiration": self.max_token_expiration,
            **{name: getattr(self, name) for name in _WS_POSITIVE_SETTINGS},
            "shutdown_grace": self.shutdown_grace,
            "auth_tokens": f"{len(self.auth_tokens)} token(s)" if self.auth_tokens else None,
            "jwt": "shared secret ****" if self.jwt_secret else self.jwks_url,
            "allow_anonymous": self.allow_anonymous,
            "rate_limits": [str(rule) for rule in self.rate_limits],
            "redis_url": mask_url(self.redis_url) if self.redis_url else None,
            "rate_limit_fail_open": self.rate_limit_fail_open,
            "trusted_proxies": list(self.trusted_proxies),
            "cors_origins": list(self.cors_origins),
            "access_log_format": self.access_log_format,
            "metrics": self.metrics,
            "hooks": {
                kind: len(getattr(self, kind))
                for kind in ("authenticate", "before_request", "resolve_key", "on_event")
            },
            **{name: getattr(self, name) for name in _POSITIVE_SETTINGS},
            "health_path": self.health_path,
            "ready_path": self.ready_path,
            "metrics_path": self.metrics_path,
            "metrics_token": "****" if self.metrics_token else None,
            "token_minting": self.token_minting,
            "ipv6_prefix": self.ipv6_prefix,
            "ws_message_rate": self.ws_message_rate,
            "ws_max_sockets": self.ws_max_sockets,
            "allowed_hosts": list(self.allowed_hosts),
            "per_worker_limits": self.per_worker_limits,
            "log_format": self.log_format,
            "fake_url": self.fake_url,
        }


def _check_path(name: str, path: str) -> None:
    if not path.startswith("/") or "?" in path or "#" in path:
        raise ConfigError(f"{name} must be an absolute path such as /healthz")


def _check_policy(config: ProxyConfig) -> None:
    try:
        config.policy()
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"invalid allow-list: {exc}") from None


def _check_positive(name: str, value: float) -> None:
    if isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{name} must be a positive number")


def _check_upstream(host: str, base: str) -> None:
    if host not in ALLOWED_HOSTS:
        known = ", ".join(sorted(ALLOWED_HOSTS))
        raise ConfigError(f"upstream mapping for unknown host {host!r} (known: {known})")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"upstream for {host} must be an http(s) base URL, got {base!r}")
    if parts.query or parts.fragment or base.endswith("/"):
        raise ConfigError(f"upstream for {host} must have no query, fragment or trailing slash")


def parse_list(variable: str, raw: str) -> tuple[str, ...]:
    """A comma-separated list; blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def parse_upstreams(variable: str, raw: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """``HOST=BASE_URL`` pairs, comma-separated (or already split, from the CLI)."""
    items = parse_list(variable, raw) if isinstance(raw, str) else tuple(raw)
    mapping: dict[str, str] = {}
    for item in items:
        host, sep, base = item.partition("=")
        if not sep or not host.strip() or not base.strip():
            raise ConfigError(f"{variable}: expected HOST=BASE_URL, got {item!r}")
        mapping[host.strip().lower()] = base.strip()
    return mapping


def _parse_int(variable: str, raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigError(f"{variable} must be an integer") from None


def _parse_seconds(variable: str, raw: str) -> float:
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigError(f"{variable} must be a number of seconds") from None


def _parse_route(variable: str, raw: str) -> str:
    return raw.strip()


def _parse_rate_limits(variable: str, raw: str) -> tuple[RateLimit, ...]:
    try:
        return parse_rate_limits(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None


_ENV_SETTINGS = {
    "route": ("FALPROXY_ROUTE", _parse_route),
    "allowed_urls": ("FALPROXY_ALLOWED_URLS", parse_list),
    "allowed_endpoints": ("FALPROXY_ALLOWED_ENDPOINTS", parse_list),
    "upstreams": ("FALPROXY_UPSTREAMS", parse_upstreams),
    "max_body_bytes": ("FALPROXY_MAX_BODY_BYTES", _parse_int),
    "connect_timeout": ("FALPROXY_CONNECT_TIMEOUT", _parse_seconds),
    "upstream_timeout": ("FALPROXY_UPSTREAM_TIMEOUT", _parse_seconds),
    "stream_idle_timeout": ("FALPROXY_STREAM_IDLE_TIMEOUT", _parse_seconds),
    "max_token_expiration": ("FALPROXY_MAX_TOKEN_EXPIRATION", _parse_int),
    "ws_max_message_bytes": ("FALPROXY_WS_MAX_MESSAGE_BYTES", _parse_int),
    "ws_idle_timeout": ("FALPROXY_WS_IDLE_TIMEOUT", _parse_seconds),
    "ws_ping_interval": ("FALPROXY_WS_PING_INTERVAL", _parse_seconds),
    "ws_ping_timeout": ("FALPROXY_WS_PING_TIMEOUT", _parse_seconds),
    "ws_max_queue": ("FALPROXY_WS_MAX_QUEUE", _parse_int),
    "shutdown_grace": ("FALPROXY_SHUTDOWN_GRACE", _parse_seconds),
    "auth_tokens": ("FALPROXY_AUTH_TOKENS", parse_list),
    "jwt_secret": ("FALPROXY_JWT_SECRET", _parse_route),
    "jwks_url": ("FALPROXY_JWKS_URL", _parse_route),
    "jwt_audience": ("FALPROXY_JWT_AUDIENCE", _parse_route),
    "jwt_issuer": ("FALPROXY_JWT_ISSUER", _parse_route),
    "allow_anonymous": ("FALPROXY_ALLOW_ANONYMOUS", parse_bool),
    "rate_limits": ("FALPROXY_RATE_LIMIT", _parse_rate_limits),
    "redis_url": ("FALPROXY_REDIS_URL", _parse_route),
    "rate_limit_fail_open": ("FALPROXY_RATE_LIMIT_FAIL_OPEN", parse_bool),
    "trusted_proxies": ("FALPROXY_TRUSTED_PROXIES", parse_list),
    "cors_origins": ("FALPROXY_CORS_ORIGINS", parse_list),
    "access_log_format": ("FALPROXY_ACCESS_LOG_FORMAT", _parse_route),
    "metrics": ("FALPROXY_METRICS", parse_bool),
    "body_timeout": ("FALPROXY_BODY_TIMEOUT", _parse_seconds),
    "body_deadline": ("FALPROXY_BODY_DEADLINE", _parse_seconds),
    "header_timeout": ("FALPROXY_HEADER_TIMEOUT", _parse_seconds),
    "health_path": ("FALPROXY_HEALTH_PATH", _parse_route),
    "ready_path": ("FALPROXY_READY_PATH", _parse_route),
    "metrics_path": ("FALPROXY_METRICS_PATH", _parse_route),
    "metrics_token": ("FALPROXY_METRICS_TOKEN", _parse_route),
    "jwks_cache_seconds": ("FALPROXY_JWKS_CACHE_SECONDS", _parse_seconds),
    "token_minting": ("FALPROXY_TOKEN_MINTING", parse_bool),
    "ipv6_prefix": ("FALPROXY_IPV6_PREFIX", _parse_int),
    "ws_message_rate": ("FALPROXY_WS_MESSAGE_RATE", _parse_route),
    "ws_max_sockets": ("FALPROXY_WS_MAX_SOCKETS", _parse_int),
    "allowed_hosts": ("FALPROXY_ALLOWED_HOSTS", parse_list),
    "per_worker_limits": ("FALPROXY_PER_WORKER_LIMITS", parse_bool),
    "log_format": ("FALPROXY_LOG_FORMAT", _parse_route),
    "fake_url": ("FALPROXY_FAKE_URL", _parse_route),
}
# Timeouts and sizes that must be positive.
_POSITIVE_SETTINGS = (
    "connect_timeout",
    "upstream_timeout",
    "stream_idle_timeout",
    "body_timeout",
    "body_deadline",
    "header_timeout",
    "jwks_cache_seconds",
)
# The WebSocket relay's settings; all must be positive.
_WS_POSITIVE_SETTINGS = (
    "ws_max_message_bytes",
    "ws_idle_timeout",
    "ws_ping_interval",
    "ws_ping_timeout",
    "ws_max_queue",
)
