"""``ProxyConfig``: every setting of a proxy in one frozen value, and the settings table.

Each field is declared once, with its environment variable, type, default, group, a
one-line doc and the reference's meaning (:func:`~falproxy.config.table.setting`);
:data:`SETTINGS` is that table, read by the environment and TOML loaders, by the groups,
by ``describe()`` and by the generated configuration reference. Build a config in code
(lists are accepted where tuples are stored), or with :meth:`ProxyConfig.from_env`. Each
group of settings (:mod:`falproxy.config.groups`) is built and checked once, at
construction, so a bad setting stops the process at start-up with one line instead of
failing on the first request; nothing changes after construction.
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
    SPEND_RULES,
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


# Not slots: the groups are cached in the instance's __dict__ (functools.cached_property),
# built during construction; no setting is ever changed after it.
@dataclass(frozen=True)
class ProxyConfig:
    """Settings of one proxy; immutable, validated on construction. Secrets stay out of repr."""

    # The settings table, one declaration per setting: default, type, a one-line doc, the
    # reference's meaning (the doc when absent), variable, group (config/groups.py: GROUPS).
    # fmt: off
    credential: FalCredential | None = setting(  # noqa: RUF009 (returns a dataclasses.field)
        None, CREDENTIAL, "The fal key that calls are made with; never shown.",
        "The fal key, `key_id:key_secret`. Also read from `FAL_KEY_ID` plus `FAL_KEY_SECRET`;"
        " masked in every display.",
        env="FAL_KEY", group="routing", secret=True,
    )
    route: str = setting(
        DEFAULT_ROUTE, TEXT, "The path the proxy answers on.",
        "The path the proxy serves.",
        env="FALPROXY_ROUTE", group="routing",
    )
    allowed_urls: tuple[str, ...] = setting(
        DEFAULT_ALLOWED_URLS, LIST, "URL globs a target must match (host and path).",
        "Comma list of URL globs over `host/path?query`; a target must match one (412"
        " otherwise).",
        env="FALPROXY_ALLOWED_URLS", group="allow_lists",
    )
    allowed_endpoints: tuple[str, ...] = setting(
        (), LIST, "fal app globs that may be called, e.g. fal-ai/flux/**; empty: all.",
        "Comma list of app globs such as `fal-ai/flux/**`, applied to every method and queue"
        " URL (403 otherwise). Empty allows every app and is warned about at start-up.",
        env="FALPROXY_ALLOWED_ENDPOINTS", group="allow_lists",
    )
    upstreams: Mapping[str, str] = setting(
        {}, UPSTREAMS, "Send a fal host's calls to another base URL.",
        "`HOST=BASE_URL` pairs, comma-separated: send one fal host's calls to another base URL"
        " (a fake, a test server). Hosts: `fal.run`, `queue.fal.run`, `rest.fal.ai`,"
        " `rest.alpha.fal.ai`, `ws.fal.run`, the backup domains `falrun.com`,"
        " `queue.falrun.com`, and `api.fal.ai` (the pricing API spend budgets ask).",
        env="FALPROXY_UPSTREAMS", group="routing",
    )
    max_body_bytes: int = setting(
        DEFAULT_MAX_BODY_BYTES, INTEGER, "Largest request body accepted, in bytes.",
        "Largest request body (413 above it).",
        env="FALPROXY_MAX_BODY_BYTES", group="timeouts",
    )
    connect_timeout: float = setting(
        DEFAULT_CONNECT_TIMEOUT, SECONDS, "Seconds to connect to fal.",
        env="FALPROXY_CONNECT_TIMEOUT", group="timeouts",
    )
    upstream_timeout: float = setting(
        DEFAULT_UPSTREAM_TIMEOUT, SECONDS, "Seconds to wait for fal's response headers.",
        "Seconds to connect and receive fal's response headers (504 after). Synchronous runs"
        " answer only when inference ends, hence the long default.",
        env="FALPROXY_UPSTREAM_TIMEOUT", group="timeouts",
    )
    stream_idle_timeout: float = setting(
        DEFAULT_STREAM_IDLE_TIMEOUT, SECONDS, "Seconds a response stream may stay silent.",
        "Seconds a response body may stay silent before the call is ended (fal sends an SSE"
        " keep-alive every 15 s).",
        env="FALPROXY_STREAM_IDLE_TIMEOUT", group="timeouts",
    )
    max_token_expiration: int = setting(
        DEFAULT_MAX_TOKEN_EXPIRATION, INTEGER, "Longest lifetime of a minted realtime token, s.",
        "Cap, in seconds, on the `token_expiration` of tokens minted through the proxy.",
        env="FALPROXY_MAX_TOKEN_EXPIRATION", group="allow_lists",
    )
    ws_max_message_bytes: int = setting(
        DEFAULT_WS_MAX_MESSAGE_BYTES, INTEGER, "Largest WebSocket message relayed, in bytes.",
        "Largest message relayed either way; a larger one closes the socket with 1009.",
        env="FALPROXY_WS_MAX_MESSAGE_BYTES", group="websocket",
    )
    ws_idle_timeout: float = setting(
        DEFAULT_WS_IDLE_TIMEOUT, SECONDS, "Seconds a relayed socket may go without a data frame.",
        "Seconds without a data frame either way before both sides are closed (pings do not"
        " count).",
        env="FALPROXY_WS_IDLE_TIMEOUT", group="websocket",
    )
    ws_ping_interval: float = setting(
        DEFAULT_WS_PING_INTERVAL, SECONDS, "Seconds between keep-alive pings to fal.",
        env="FALPROXY_WS_PING_INTERVAL", group="websocket",
    )
    ws_ping_timeout: float = setting(
        DEFAULT_WS_PING_TIMEOUT, SECONDS, "Seconds a pong may take before fal counts as gone.",
        "Seconds a pong from fal may take before the upstream counts as dead.",
        env="FALPROXY_WS_PING_TIMEOUT", group="websocket",
    )
    ws_max_queue: int = setting(
        DEFAULT_WS_MAX_QUEUE, INTEGER, "Frames from fal buffered before reading pauses.",
        "Frames from fal buffered before the relay stops reading from fal (back-pressure).",
        env="FALPROXY_WS_MAX_QUEUE", group="websocket",
    )
    shutdown_grace: float = setting(
        DEFAULT_SHUTDOWN_GRACE, SECONDS, "Seconds open calls may finish after SIGTERM.",
        "Seconds running calls may take to finish after SIGTERM.",
        env="FALPROXY_SHUTDOWN_GRACE", group="timeouts",
    )
    auth_tokens: tuple[str, ...] = setting(
        (), LIST, "Static bearer tokens a caller may present.",
        "Comma list of static bearer tokens; the identity is `token-<n>` (the position).",
        env="FALPROXY_AUTH_TOKENS", group="auth", secret=True,
    )
    jwt_secret: str | None = setting(
        None, TEXT, "Shared secret of HS256 JWTs (32 characters or more).",
        "HS256/384/512 secret (32 characters or more) for bearer JWTs. Exclusive with"
        " `jwks_url`.",
        env="FALPROXY_JWT_SECRET", group="auth", secret=True,
    )
    jwks_url: str | None = setting(
        None, URL, "JWKS URL of the identity provider whose JWTs are accepted.",
        "Your identity provider's key set for RS/ES/PS/EdDSA bearer JWTs (https, or http on"
        " loopback).",
        env="FALPROXY_JWKS_URL", group="auth",
    )
    jwt_audience: str | None = setting(
        None, TEXT, "Required JWT audience (aud).",
        "The `aud` claim a JWT must carry.",
        env="FALPROXY_JWT_AUDIENCE", group="auth",
    )
    jwt_issuer: str | None = setting(
        None, TEXT, "Required JWT issuer (iss).",
        "The `iss` claim a JWT must carry.",
        env="FALPROXY_JWT_ISSUER", group="auth",
    )
    allow_anonymous: bool = setting(
        False, BOOLEAN, "Serve callers without an identity even when authentication is set.",
        "With authentication configured, let calls without a token through (limited by"
        " address).",
        env="FALPROXY_ALLOW_ANONYMOUS", group="auth",
    )
    rate_limits: tuple[RateLimit, ...] = setting(
        (), RATE_RULES, "Rate-limit rules separated by ';', e.g. '60/minute; 5/minute fal-ai/**'.",
        "Rules separated by `;`, each `LIMIT [ENDPOINT_GLOB] [per=identity|address|global]"
        " [cost=N]`.",
        env="FALPROXY_RATE_LIMIT", group="rate_limiting",
    )
    redis_url: str | None = setting(
        None, URL, "Redis for rate-limit counters shared by workers and replicas.",
        "`redis://` or `rediss://` storage for the rate-limit counters, shared by every replica"
        " (needs `falproxy[redis]`). Unset: in memory, per process.",
        env="FALPROXY_REDIS_URL", group="rate_limiting", secret=True,
    )
    rate_limit_fail_open: bool = setting(
        True, BOOLEAN, "Admit calls while the limit storage is down (false: answer 503).",
        "When Redis fails: admit calls (`true`) or refuse them with 503 (`false`).",
        env="FALPROXY_RATE_LIMIT_FAIL_OPEN", group="rate_limiting",
    )
    trusted_proxies: tuple[str, ...] = setting(
        (), LIST, "Proxy addresses/networks whose X-Forwarded-For is believed.",
        "Comma list of IPs/CIDRs whose `X-Forwarded-For` is believed.",
        env="FALPROXY_TRUSTED_PROXIES", group="rate_limiting",
    )
    cors_origins: tuple[str, ...] = setting(
        (), LIST, "Browser origins allowed to call cross-origin ('*' for any).",
        "Origins (`scheme://host[:port]`, or `*`) allowed to call the proxy from another"
        " origin.",
        env="FALPROXY_CORS_ORIGINS", group="cors",
    )
    access_log_format: str = setting(
        "text", TEXT, "Deprecated alias of FALPROXY_LOG_FORMAT.",
        "Deprecated alias of `FALPROXY_LOG_FORMAT` (a warning says so at start-up).",
        env="FALPROXY_ACCESS_LOG_FORMAT", group="operations",
    )
    metrics: bool = setting(
        True, BOOLEAN, "Serve Prometheus metrics.",
        env="FALPROXY_METRICS", group="operations",
    )
    authenticate: tuple[Authenticate, ...] = setting(
        (), HOOKS, "Hooks that give a call an identity (code only).",
        "`async (RequestContext) -> Identity | None`.",
        env=None, group="hooks",
    )
    before_request: tuple[BeforeRequest, ...] = setting(
        (), HOOKS, "Hooks that may refuse or reply to a call (code only).",
        "`async (RequestContext) -> Reply | None`.",
        env=None, group="hooks",
    )
    resolve_key: tuple[ResolveKey, ...] = setting(
        (), HOOKS, "Hooks that choose the fal key of a call (code only).",
        "`async (RequestContext) -> FalCredential | None`.",
        env=None, group="hooks",
    )
    on_event: tuple[OnEvent, ...] = setting(
        (), HOOKS, "Hooks that receive each call's event (code only).",
        "`async (ProxyEvent) -> None`.",
        env=None, group="hooks",
    )
    body_timeout: float = setting(
        DEFAULT_BODY_TIMEOUT, SECONDS, "Seconds a client may pause between body chunks.",
        "Seconds a request body may pause between two chunks (408 after).",
        env="FALPROXY_BODY_TIMEOUT", group="timeouts",
    )
    body_deadline: float = setting(
        DEFAULT_BODY_DEADLINE, SECONDS, "Seconds a whole request body may take.",
        "Seconds a whole request body may take, however steadily it drips (408 after).",
        env="FALPROXY_BODY_DEADLINE", group="timeouts",
    )
    header_timeout: float = setting(
        DEFAULT_HEADER_TIMEOUT, SECONDS, "Seconds a request head may take to arrive.",
        "Seconds a request head (request line and headers) may take to arrive under `falproxy"
        " serve`; the connection is closed after it.",
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
        "Path of the Prometheus endpoint.",
        env="FALPROXY_METRICS_PATH", group="operations",
    )
    metrics_token: str | None = setting(
        None, TEXT, "Bearer token required to read metrics.",
        "When set, the metrics endpoint requires `Authorization: Bearer <token>` (401"
        " otherwise).",
        env="FALPROXY_METRICS_TOKEN", group="operations", secret=True,
    )
    jwks_cache_seconds: float = setting(
        DEFAULT_JWKS_CACHE_SECONDS, SECONDS, "Seconds a key fetched from the JWKS URL is trusted.",
        "Seconds a key fetched from `jwks_url` is trusted before the set is fetched again; an"
        " unknown key id triggers a refetch (at most one every 5 s).",
        env="FALPROXY_JWKS_CACHE_SECONDS", group="auth",
    )
    token_minting: bool = setting(
        True, BOOLEAN, "Mint short-lived realtime tokens for browsers (false: 403).",
        "`false` refuses token minting (`rest.fal.ai/tokens/`) with 403; `realtime.connect` of"
        " the official client then stops working.",
        env="FALPROXY_TOKEN_MINTING", group="allow_lists",
    )
    ipv6_prefix: int = setting(
        DEFAULT_IPV6_PREFIX, INTEGER, "Anonymous IPv6 callers share a budget per this prefix.",
        "Anonymous IPv6 callers share one rate-limit budget per network of this prefix length.",
        env="FALPROXY_IPV6_PREFIX", group="rate_limiting",
    )
    ws_message_rate: str | None = setting(
        None, TEXT, "Frames per identity from client to fal, across its sockets (10/second).",
        "Messages from client to fal per identity across its sockets, such as `10/second`;"
        " exceeding it closes the socket with 1008. Counted in the rate-limit storage (memory"
        " or Redis).",
        env="FALPROXY_WS_MESSAGE_RATE", group="websocket",
    )
    ws_max_sockets: int | None = setting(
        None, INTEGER, "Open sockets per identity.",
        "Open sockets per identity, counted per process; the handshake above it gets 429.",
        env="FALPROXY_WS_MAX_SOCKETS", group="websocket",
    )
    allowed_hosts: tuple[str, ...] = setting(
        (), LIST, "Host header values served; empty: loopback names when bound to loopback.",
        "`Host` header values the proxy route answers (421 for others; `*` for any). Empty:"
        " under `falproxy serve` bound to a loopback address, loopback names only (`localhost`,"
        " `127.0.0.1`, `::1`); otherwise any.",
        env="FALPROXY_ALLOWED_HOSTS", group="allow_lists",
    )
    per_worker_limits: bool = setting(
        False, BOOLEAN, "Allow in-memory rate limits counted per worker with several workers.",
        "Accept in-memory limits (`FALPROXY_RATE_LIMIT`, `FALPROXY_WS_MESSAGE_RATE`,"
        " `FALPROXY_WS_MAX_SOCKETS`) counted per worker with `--workers` above 1; otherwise"
        " such a start is refused unless `FALPROXY_REDIS_URL` is set.",
        env="FALPROXY_PER_WORKER_LIMITS", group="rate_limiting",
    )
    log_format: str = setting(
        "text", TEXT, "Format of every log line: text or json.",
        "One format for every line falproxy and uvicorn print: `text` or `json` (one JSON"
        " object per line).",
        env="FALPROXY_LOG_FORMAT", group="operations",
    )
    upstream_ca_file: str | None = setting(
        None, TEXT, "A PEM CA bundle trusted for upstream TLS instead of the system store.",
        "A PEM CA bundle to trust for upstream TLS instead of the system store; for tests,"
        " private CAs and the benchmark. Certificates are always verified and the host name"
        " checked; a file that is missing or holds no PEM certificate stops start-up.",
        env="FALPROXY_UPSTREAM_CA_FILE", group="timeouts",
    )
    fake_url: str | None = setting(
        None, URL, "A running fake fal (falproxy fake) to send every call to.",
        "A running fake fal (`falproxy fake`) to send every call to, with the fake's key.",
        env="FALPROXY_FAKE_URL", group="routing",
    )
    server: str = setting(
        "native", TEXT, "HTTP front end of falproxy serve: native (llhttp) or asgi (uvicorn).",
        "HTTP front end of `falproxy serve`: `native` (default; requests parsed with llhttp"
        " directly, WebSockets relayed frame by frame) or `asgi` (uvicorn's own HTTP protocol)."
        " `--server` overrides it.",
        env="FALPROXY_SERVER", group="timeouts",
    )
    backup_domains: bool = setting(
        True, BOOLEAN, "Retry at fal's backup domain when fal.run cannot be reached.",
        "When `fal.run` or `queue.fal.run` cannot be reached at all (DNS, refused, connect"
        " timeout, TLS handshake), send the call once to fal's backup domain (`falrun.com`,"
        " `queue.falrun.com`); never after a byte of the request was sent. `false` turns it"
        " off.",
        env="FALPROXY_BACKUP_DOMAINS", group="routing",
    )
    max_connections: int | None = setting(
        None, INTEGER, "Open client connections per worker; empty: what `ulimit -n` allows.",
        "Open client connections per `falproxy serve` worker. At the cap, connections that"
        " have not sent a complete request head are closed first (oldest first), and from"
        " three quarters of it heads must arrive within 2 s. Empty: what the open-file limit"
        " allows (`ulimit -n`, raised to its hard limit at start), about half of it after a"
        " reserve; a value the limit cannot honour stops start-up.",
        env="FALPROXY_MAX_CONNECTIONS", group="timeouts",
    )
    request_ownership: str = setting(
        "auto", TEXT, "Queued requests readable by their submitter only: auto, on or off.",
        "`auto` (on when authentication is configured), `on` or `off`. While on, a queued"
        " request's status, stream, logs, result and cancel are served to the identity that"
        " submitted it only; others, and ids the proxy never recorded, get 404. Anonymous"
        " callers share the owner `anonymous`. See [Budgets and ownership](../budgets.md).",
        env="FALPROXY_REQUEST_OWNERSHIP", group="budgets",
    )
    request_ttl: float = setting(
        budgets.DEFAULT_REQUEST_TTL, SECONDS, "Seconds a queued request's record is kept.",
        "Seconds a submitted request's record (owner, held estimate) is kept, in memory or"
        " Redis; at least 60. A read after it expires is 404 while ownership is on.",
        env="FALPROXY_REQUEST_TTL", group="budgets",
    )
    spend_limits: tuple[SpendLimit, ...] = setting(
        (), SPEND_RULES, "Spend budgets in USD separated by ';', e.g. '0.50/day'.",
        "Spend budgets in USD, separated by `;`, each `AMOUNT/PERIOD [ENDPOINT_GLOB]"
        " [per=identity|address|global]`, periods `hour`, `day`, `week`, `month` (fixed UTC"
        " windows). A spent rule refuses new work for its apps with 402.",
        env="FALPROXY_SPEND_LIMIT", group="budgets",
    )
    prices_file: str | None = setting(
        None, TEXT, "JSON or TOML file of endpoint globs to USD per unit (wins over fal's API).",
        "A `.json` or `.toml` file mapping endpoint globs to USD per billable unit, e.g."
        ' `{"fal-ai/flux/**": 0.04}`; the first matching glob wins, and the file wins over'
        " fal's pricing API. An unreadable or malformed file stops start-up.",
        env="FALPROXY_PRICES", group="budgets",
    )
    spend_allow_unpriced: bool = setting(
        False, BOOLEAN, "Admit budgeted calls whose unit price is unknown (default: refuse).",
        "Admit budgeted calls whose unit price is unknown (no file entry, pricing API"
        " unreachable or silent) instead of refusing them with 402: they pass while their"
        " rules have room, and are charged nothing.",
        env="FALPROXY_SPEND_ALLOW_UNPRICED", group="budgets",
    )
    # fmt: on

    def __post_init__(self) -> None:
        # Every group is built and checked here, once, so a bad value fails construction.
        _ = self._groups

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
            config, warnings = loader.load_sources(env, settings=SETTINGS, build=cls)
            loader.log_once(warnings)
            if config.fake_url is None:
                config.require_credential()
        except ConfigError as exc:
            loader.exit_with(exc)
        return config

    @functools.cached_property
    def _groups(self) -> Mapping[str, groups.GroupValues]:
        # Built and checked once, by __post_init__; cached in the instance's __dict__.
        return groups.build(self, SETTINGS)

    @property
    def routing(self) -> groups.GroupValues:
        """The key, the route, the upstream mapping and the fake (``config.routing.route``)."""
        return self._groups["routing"]

    @property
    def allow_lists(self) -> groups.GroupValues:
        return self._groups["allow_lists"]

    @property
    def timeouts(self) -> groups.GroupValues:
        return self._groups["timeouts"]

    @property
    def websocket(self) -> groups.GroupValues:
        return self._groups["websocket"]

    @property
    def auth(self) -> groups.GroupValues:
        return self._groups["auth"]

    @property
    def rate_limiting(self) -> groups.GroupValues:
        return self._groups["rate_limiting"]

    @property
    def cors(self) -> groups.GroupValues:
        return self._groups["cors"]

    @property
    def operations(self) -> groups.GroupValues:
        return self._groups["operations"]

    @property
    def budgets(self) -> groups.GroupValues:
        """Request ownership and spend budgets (``config/budgets.py``)."""
        return self._groups["budgets"]

    @property
    def hooks(self) -> groups.GroupValues:
        return self._groups["hooks"]

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
