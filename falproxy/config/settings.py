"""``ProxyConfig``: every setting of a proxy in one frozen value, and the settings table.

Each field is declared once, with its environment variable, type, default and a one-line
doc (:func:`~falproxy.config.table.setting`); :data:`SETTINGS` is that table, read by the
environment and TOML loaders, by ``describe()`` and by the generated configuration
reference. Build a config in code (lists are accepted where tuples are stored), or with
:meth:`ProxyConfig.from_env`. Each group of settings is a small value that validates
itself (:mod:`falproxy.config.groups`), so a bad setting stops the process at start-up
with one line instead of failing on the first request; nothing changes after construction.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from falproxy.config import budgets, groups, loader
from falproxy.config.parsing import upstream_pairs
from falproxy.config.table import (
    BOOLEAN,
    CREDENTIAL,
    HOOKS,
    INTEGER,
    LIST,
    RATE_RULES,
    SECONDS,
    TEXT,
    UPSTREAMS,
    URL,
    Setting,
    setting,
    settings_of,
)
from falproxy.core.errors import ConfigError
from falproxy.core.hooks import Authenticate, BeforeRequest, OnEvent, ResolveKey
from falproxy.core.keys import FalCredential
from falproxy.core.policy import DEFAULT_ALLOWED_URLS, Policy
from falproxy.core.rate_rules import RateLimit
from falproxy.core.spend_rules import SpendLimit

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
    """Settings of one proxy; immutable, validated on construction. Secrets stay out of repr."""

    # The settings table, one declaration per setting: default, type, doc, variable, group.
    # fmt: off
    credential: FalCredential | None = setting(  # noqa: RUF009 (returns a dataclasses.field)
        None, CREDENTIAL, "The fal key that calls are made with; never shown.",
        env="FAL_KEY", group="credential", secret=True,
    )
    route: str = setting(
        DEFAULT_ROUTE, TEXT, "The path the proxy answers on.",
        env="FALPROXY_ROUTE", group="routing",
    )
    allowed_urls: tuple[str, ...] = setting(
        DEFAULT_ALLOWED_URLS, LIST, "URL globs a target must match (host and path).",
        env="FALPROXY_ALLOWED_URLS", group="routing",
    )
    allowed_endpoints: tuple[str, ...] = setting(
        (), LIST, "fal app globs that may be called, e.g. fal-ai/flux/**; empty: all.",
        env="FALPROXY_ALLOWED_ENDPOINTS", group="routing",
    )
    upstreams: Mapping[str, str] = setting(
        {}, UPSTREAMS, "Send a fal host's calls to another base URL.",
        env="FALPROXY_UPSTREAMS", group="routing",
    )
    max_body_bytes: int = setting(
        DEFAULT_MAX_BODY_BYTES, INTEGER, "Largest request body accepted, in bytes.",
        env="FALPROXY_MAX_BODY_BYTES", group="routing",
    )
    connect_timeout: float = setting(
        DEFAULT_CONNECT_TIMEOUT, SECONDS, "Seconds to connect to fal.",
        env="FALPROXY_CONNECT_TIMEOUT", group="timeouts",
    )
    upstream_timeout: float = setting(
        DEFAULT_UPSTREAM_TIMEOUT, SECONDS, "Seconds to wait for fal's response headers.",
        env="FALPROXY_UPSTREAM_TIMEOUT", group="timeouts",
    )
    stream_idle_timeout: float = setting(
        DEFAULT_STREAM_IDLE_TIMEOUT, SECONDS, "Seconds a response stream may stay silent.",
        env="FALPROXY_STREAM_IDLE_TIMEOUT", group="timeouts",
    )
    max_token_expiration: int = setting(
        DEFAULT_MAX_TOKEN_EXPIRATION, INTEGER, "Longest lifetime of a minted realtime token, s.",
        env="FALPROXY_MAX_TOKEN_EXPIRATION", group="routing",
    )
    ws_max_message_bytes: int = setting(
        DEFAULT_WS_MAX_MESSAGE_BYTES, INTEGER, "Largest WebSocket message relayed, in bytes.",
        env="FALPROXY_WS_MAX_MESSAGE_BYTES", group="websocket",
    )
    ws_idle_timeout: float = setting(
        DEFAULT_WS_IDLE_TIMEOUT, SECONDS, "Seconds a relayed socket may go without a data frame.",
        env="FALPROXY_WS_IDLE_TIMEOUT", group="websocket",
    )
    ws_ping_interval: float = setting(
        DEFAULT_WS_PING_INTERVAL, SECONDS, "Seconds between keep-alive pings to fal.",
        env="FALPROXY_WS_PING_INTERVAL", group="websocket",
    )
    ws_ping_timeout: float = setting(
        DEFAULT_WS_PING_TIMEOUT, SECONDS, "Seconds a pong may take before fal counts as gone.",
        env="FALPROXY_WS_PING_TIMEOUT", group="websocket",
    )
    ws_max_queue: int = setting(
        DEFAULT_WS_MAX_QUEUE, INTEGER, "Frames from fal buffered before reading pauses.",
        env="FALPROXY_WS_MAX_QUEUE", group="websocket",
    )
    shutdown_grace: float = setting(
        DEFAULT_SHUTDOWN_GRACE, SECONDS, "Seconds open calls may finish after SIGTERM.",
        env="FALPROXY_SHUTDOWN_GRACE", group="timeouts",
    )
    auth_tokens: tuple[str, ...] = setting(
        (), LIST, "Static bearer tokens a caller may present.",
        env="FALPROXY_AUTH_TOKENS", group="auth", secret=True,
    )
    jwt_secret: str | None = setting(
        None, TEXT, "Shared secret of HS256 JWTs (32 characters or more).",
        env="FALPROXY_JWT_SECRET", group="auth", secret=True,
    )
    jwks_url: str | None = setting(
        None, URL, "JWKS URL of the identity provider whose JWTs are accepted.",
        env="FALPROXY_JWKS_URL", group="auth",
    )
    jwt_audience: str | None = setting(
        None, TEXT, "Required JWT audience (aud).",
        env="FALPROXY_JWT_AUDIENCE", group="auth",
    )
    jwt_issuer: str | None = setting(
        None, TEXT, "Required JWT issuer (iss).",
        env="FALPROXY_JWT_ISSUER", group="auth",
    )
    allow_anonymous: bool = setting(
        False, BOOLEAN, "Serve callers without an identity even when authentication is set.",
        env="FALPROXY_ALLOW_ANONYMOUS", group="auth",
    )
    rate_limits: tuple[RateLimit, ...] = setting(
        (), RATE_RULES, "Rate-limit rules separated by ';', e.g. '60/minute; 5/minute fal-ai/**'.",
        env="FALPROXY_RATE_LIMIT", group="rate_limiting",
    )
    redis_url: str | None = setting(
        None, URL, "Redis for rate-limit counters shared by workers and replicas.",
        env="FALPROXY_REDIS_URL", group="rate_limiting", secret=True,
    )
    rate_limit_fail_open: bool = setting(
        True, BOOLEAN, "Admit calls while the limit storage is down (false: answer 503).",
        env="FALPROXY_RATE_LIMIT_FAIL_OPEN", group="rate_limiting",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (), LIST, "Proxy addresses/networks whose X-Forwarded-For is believed.",
        env="FALPROXY_TRUSTED_PROXIES", group="rate_limiting",
    )
    cors_origins: tuple[str, ...] = setting(
        (), LIST, "Browser origins allowed to call cross-origin ('*' for any).",
        env="FALPROXY_CORS_ORIGINS", group="cors",
    )
    access_log_format: str = setting(
        "text", TEXT, "Deprecated alias of FALPROXY_LOG_FORMAT.",
        env="FALPROXY_ACCESS_LOG_FORMAT", group="operations",
    )
    metrics: bool = setting(
        True, BOOLEAN, "Serve Prometheus metrics.",
        env="FALPROXY_METRICS", group="operations",
    )
    authenticate: tuple[Authenticate, ...] = setting(
        (), HOOKS, "Hooks that give a call an identity (code only).",
        env=None, group="hooks",
    )
    before_request: tuple[BeforeRequest, ...] = setting(
        (), HOOKS, "Hooks that may refuse or reply to a call (code only).",
        env=None, group="hooks",
    )
    resolve_key: tuple[ResolveKey, ...] = setting(
        (), HOOKS, "Hooks that choose the fal key of a call (code only).",
        env=None, group="hooks",
    )
    on_event: tuple[OnEvent, ...] = setting(
        (), HOOKS, "Hooks that receive each call's event (code only).",
        env=None, group="hooks",
    )
    body_timeout: float = setting(
        DEFAULT_BODY_TIMEOUT, SECONDS, "Seconds a client may pause between body chunks.",
        env="FALPROXY_BODY_TIMEOUT", group="timeouts",
    )
    body_deadline: float = setting(
        DEFAULT_BODY_DEADLINE, SECONDS, "Seconds a whole request body may take.",
        env="FALPROXY_BODY_DEADLINE", group="timeouts",
    )
    header_timeout: float = setting(
        DEFAULT_HEADER_TIMEOUT, SECONDS, "Seconds a request head may take to arrive.",
        env="FALPROXY_HEADER_TIMEOUT", group="timeouts",
    )
    health_path: str = setting(
        DEFAULT_HEALTH_PATH, TEXT, "Path of the liveness endpoint.",
        env="FALPROXY_HEALTH_PATH", group="operations",
    )
    ready_path: str = setting(
        DEFAULT_READY_PATH, TEXT, "Path of the readiness endpoint.",
        env="FALPROXY_READY_PATH", group="operations",
    )
    metrics_path: str = setting(
        DEFAULT_METRICS_PATH, TEXT, "Path of the Prometheus metrics endpoint.",
        env="FALPROXY_METRICS_PATH", group="operations",
    )
    metrics_token: str | None = setting(
        None, TEXT, "Bearer token required to read metrics.",
        env="FALPROXY_METRICS_TOKEN", group="operations", secret=True,
    )
    jwks_cache_seconds: float = setting(
        DEFAULT_JWKS_CACHE_SECONDS, SECONDS, "Seconds a key fetched from the JWKS URL is trusted.",
        env="FALPROXY_JWKS_CACHE_SECONDS", group="auth",
    )
    token_minting: bool = setting(
        True, BOOLEAN, "Mint short-lived realtime tokens for browsers (false: 403).",
        env="FALPROXY_TOKEN_MINTING", group="auth",
    )
    ipv6_prefix: int = setting(
        DEFAULT_IPV6_PREFIX, INTEGER, "Anonymous IPv6 callers share a budget per this prefix.",
        env="FALPROXY_IPV6_PREFIX", group="rate_limiting",
    )
    ws_message_rate: str | None = setting(
        None, TEXT, "Frames per identity from client to fal, across its sockets (10/second).",
        env="FALPROXY_WS_MESSAGE_RATE", group="websocket",
    )
    ws_max_sockets: int | None = setting(
        None, INTEGER, "Open sockets per identity.",
        env="FALPROXY_WS_MAX_SOCKETS", group="websocket",
    )
    allowed_hosts: tuple[str, ...] = setting(
        (), LIST, "Host header values served; empty: loopback names when bound to loopback.",
        env="FALPROXY_ALLOWED_HOSTS", group="routing",
    )
    per_worker_limits: bool = setting(
        False, BOOLEAN, "Allow in-memory rate limits counted per worker with several workers.",
        env="FALPROXY_PER_WORKER_LIMITS", group="rate_limiting",
    )
    log_format: str = setting(
        "text", TEXT, "Format of every log line: text or json.",
        env="FALPROXY_LOG_FORMAT", group="operations",
    )
    upstream_ca_file: str | None = setting(
        None, TEXT, "A PEM CA bundle trusted for upstream TLS instead of the system store.",
        env="FALPROXY_UPSTREAM_CA_FILE", group="timeouts",
    )
    fake_url: str | None = setting(
        None, URL, "A running fake fal (falproxy fake) to send every call to.",
        env="FALPROXY_FAKE_URL", group="operations",
    )
    server: str = setting(
        "native", TEXT, "HTTP front end of falproxy serve: native (llhttp) or asgi (uvicorn).",
        env="FALPROXY_SERVER", group="operations",
    )
    max_connections: int | None = setting(
        None, INTEGER, "Open client connections per worker; empty: what `ulimit -n` allows.",
        env="FALPROXY_MAX_CONNECTIONS", group="operations",
    )
    request_ownership: str = setting(
        "auto", TEXT, "Queued requests readable by their submitter only: auto, on or off.",
        env="FALPROXY_REQUEST_OWNERSHIP", group="budgets",
    )
    request_ttl: float = setting(
        budgets.DEFAULT_REQUEST_TTL, SECONDS, "Seconds a queued request's record is kept.",
        env="FALPROXY_REQUEST_TTL", group="budgets",
    )
    spend_limits: tuple[SpendLimit, ...] = setting(
        (), budgets.SPEND_RULES, "Spend budgets in USD separated by ';', e.g. '0.50/day'.",
        env="FALPROXY_SPEND_LIMIT", group="budgets",
    )
    prices_file: str | None = setting(
        None, TEXT, "JSON or TOML file of endpoint globs to USD per unit (wins over fal's API).",
        env="FALPROXY_PRICES", group="budgets",
    )
    spend_allow_unpriced: bool = setting(
        False, BOOLEAN, "Admit budgeted calls whose unit price is unknown (default: refuse).",
        env="FALPROXY_SPEND_ALLOW_UNPRICED", group="budgets",
    )
    # fmt: on

    def __post_init__(self) -> None:
        # Each group validates itself; built here once so a bad value fails construction.
        groups.check_credential(self.credential)
        for group in _GROUPS:
            groups.group_of(group, self)

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, *, base: Mapping[str, object] | None = None
    ) -> ProxyConfig:
        """Read ``FAL_KEY`` (or ``FAL_KEY_ID``/``FAL_KEY_SECRET``) and ``FALPROXY_*``.

        ``base`` holds settings from a configuration file; the environment overrides them.
        Warnings (a deprecated variable, a key that is not ``id:secret``) are logged once.
        """
        env = os.environ if env is None else env
        config, warnings = loader.load(env, base=base, settings=SETTINGS, build=cls)
        loader.log_once(warnings)
        return config

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None) -> ProxyConfig:
        """The configuration of an app that embeds the proxy, or one line and exit 4.

        Reads the file named by ``FALPROXY_CONFIG`` (if any), then the environment, and
        requires a fal key (unless ``FALPROXY_FAKE_URL`` names a fake to call). A mistake
        prints ``falproxy: error: ...`` on stderr, as ``falproxy serve`` does, and raises
        ``SystemExit(4)`` (gunicorn then stops instead of restarting workers), instead of
        the traceback an exception would print while a server imports the app module.
        """
        try:
            env = os.environ if env is None else env
            path = env.get(loader.CONFIG_FILE_ENV, "").strip()
            base = loader.load_file(path, SETTINGS) if path else None
            config = cls.from_env(env, base=base)
            if config.fake_url is None:
                config.require_credential()
        except ConfigError as exc:
            loader.exit_with(exc)
        return config

    @property
    def routing(self) -> groups.Routing:
        return groups.group_of(groups.Routing, self)

    @property
    def timeouts(self) -> groups.Timeouts:
        return groups.group_of(groups.Timeouts, self)

    @property
    def websocket(self) -> groups.WebSocketLimits:
        return groups.group_of(groups.WebSocketLimits, self)

    @property
    def rate_limiting(self) -> groups.RateLimiting:
        return groups.group_of(groups.RateLimiting, self)

    @property
    def auth(self) -> groups.Auth:
        return groups.group_of(groups.Auth, self)

    @property
    def cors(self) -> groups.Cors:
        return groups.group_of(groups.Cors, self)

    @property
    def operations(self) -> groups.Operations:
        return groups.group_of(groups.Operations, self)

    @property
    def budgets(self) -> budgets.Budgets:
        return groups.group_of(budgets.Budgets, self)

    @property
    def hooks(self) -> groups.Hooks:
        return groups.group_of(groups.Hooks, self)

    def policy(self) -> Policy:
        """The compiled allow-lists of this configuration (validated at construction)."""
        return Policy(
            self.allowed_urls,
            self.allowed_endpoints,
            self.max_token_expiration,
            token_minting=self.token_minting,
        )

    def require_credential(self) -> FalCredential:
        """The fal key, or the start-up error that names both ways to set it."""
        if self.credential is None:
            raise ConfigError(NO_KEY_MESSAGE)
        return self.credential

    def describe(self) -> dict[str, object]:
        """The effective settings for display: secrets and URL credentials masked."""
        return {row.name: row.show(getattr(self, row.name)) for row in SETTINGS}

    def __repr__(self) -> str:
        """The settings that differ from their defaults, masked as in :meth:`describe`."""
        changed = (
            f"{row.name}={row.show(getattr(self, row.name))!r}"
            for row in SETTINGS
            if getattr(self, row.name) != row.default
        )
        return f"ProxyConfig({', '.join(changed)})"


# One line for a missing key, the same from `falproxy serve` and from an app that embeds
# the proxy (ProxyConfig.load, FalProxy); it names every way out, the fake fal included.
NO_KEY_MESSAGE = (
    "no fal credential: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET) to proxy the real "
    "fal API, or use the fake fal: `falproxy serve --fake`, or FALPROXY_FAKE_URL="
    "http://127.0.0.1:9000 with `falproxy fake --port 9000` running"
)
_GROUPS = (
    groups.Routing,
    groups.Timeouts,
    groups.WebSocketLimits,
    groups.RateLimiting,
    groups.Auth,
    groups.Cors,
    groups.Operations,
    groups.Hooks,
    budgets.Budgets,
)


def _normalising(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap the dataclass ``__init__``: values given in code take their stored form first.

    ``ProxyConfig(cors_origins=["https://a"])`` stores a tuple, ``upstreams`` a read-only
    mapping, a key string a ``FalCredential``: converted before the frozen instance is
    built, so nothing is ever changed after construction.
    """
    names = [item.name for item in dataclasses.fields(ProxyConfig)]
    kinds = {row.name: row.value_kind for row in SETTINGS}

    @functools.wraps(init)  # keeps the keyword signature for help() and IDEs
    def __init__(self: ProxyConfig, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"ProxyConfig takes at most {len(names)} positional arguments")
        values = dict(zip(names, args, strict=False))
        for name, value in kwargs.items():
            if name in values:
                raise TypeError(f"ProxyConfig got multiple values for argument {name!r}")
            values[name] = value
        init(
            self,
            **{
                name: value if name not in kinds else kinds[name].normalise(name, value)
                for name, value in values.items()
            },
        )

    return __init__


# The settings table: one row per ProxyConfig field (see falproxy.config.table.Setting).
SETTINGS: tuple[Setting, ...] = settings_of(
    ProxyConfig, {"log_format": ("FALPROXY_ACCESS_LOG_FORMAT",)}
)
setattr(ProxyConfig, "__init__", _normalising(ProxyConfig.__init__))  # noqa: B010


def parse_upstreams(variable: str, raw: str | list[str] | tuple[str, ...]) -> dict[str, str]:
    """``HOST=BASE_URL`` pairs from ``variable`` (``--upstream`` flags); one-line errors."""
    try:
        return upstream_pairs(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}: {exc}") from None
