"""The sub-settings of a proxy: small frozen values that check themselves on construction.

:class:`~falproxy.config.settings.ProxyConfig` keeps its flat keywords (what users write)
and builds one of these per group when it is constructed, so every rule about a group of
settings lives with that group. Field names are ``ProxyConfig``'s, so an error
(:class:`~falproxy.core.errors.InvalidSetting`) names the setting, and the loader can
rename it to the variable or file key the user wrote.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

from falproxy.config.extras import install_hint, is_installed
from falproxy.core.client_address import parse_networks
from falproxy.core.errors import InvalidSetting
from falproxy.core.hooks import Authenticate, BeforeRequest, OnEvent, ResolveKey
from falproxy.core.keys import FalCredential
from falproxy.core.policy import Policy
from falproxy.core.rate_rules import RateLimit, is_single_rate
from falproxy.core.redact import mask_url
from falproxy.core.targets import ALLOWED_HOSTS

LOG_FORMATS = ("text", "json")
# falproxy serve's HTTP front ends (standalone/cli.py): the native protocol or uvicorn's.
SERVERS = ("native", "asgi")
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output (256 bits).
MIN_JWT_SECRET_LENGTH = 32
REDIS_SCHEMES = ("redis", "rediss", "redis+unix")

Group = TypeVar("Group")


def group_of(cls: type[Group], values: Any) -> Group:
    """``cls`` built from the same-named attributes of ``values`` (a ``ProxyConfig``)."""
    return cls(**{item.name: getattr(values, item.name) for item in fields(cls)})  # type: ignore[arg-type]


def _positive(name: str, value: object, *, integer: bool = False) -> None:
    number_types = int if integer else int | float
    if (
        isinstance(value, bool)
        or not isinstance(value, number_types)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InvalidSetting(name, f"must be a positive {'integer' if integer else 'number'}")


def _boolean(name: str, value: object) -> None:
    # A string such as "false" is truthy: accepting it would turn a setting on by mistake.
    if not isinstance(value, bool):
        raise InvalidSetting(name, "must be True or False")


def _optional_text(name: str, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidSetting(name, "must be a non-empty string")


def _strings(name: str, values: tuple[object, ...]) -> None:
    if not all(isinstance(item, str) and item for item in values):
        raise InvalidSetting(name, "must hold non-empty strings only")


def _path(name: str, path: object) -> None:
    if not isinstance(path, str) or not path.startswith("/") or "?" in path or "#" in path:
        raise InvalidSetting(name, "must be an absolute path such as /healthz")


def _http_url(name: str, url: str, *, loopback_http: bool = False) -> None:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        if not loopback_http or _is_loopback(parts.hostname):
            return
        raise InvalidSetting(name, "must be https (plain http only on loopback)")
    raise InvalidSetting(name, f"must be an http(s) URL, got {mask_url(url)!r}")


def _extra_installed(name: str, package: str, extra: str) -> None:
    """A setting whose optional package is missing: one line naming the pip install."""
    if not is_installed(package):
        raise InvalidSetting(name, f"needs the {package} package: {install_hint(extra)}")


def _is_loopback(hostname: str) -> bool:
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return hostname == "localhost"


@dataclass(frozen=True, slots=True)
class Routing:
    """What the proxy serves and where calls go: route, allow-lists, upstreams, sizes."""

    route: str
    allowed_urls: tuple[str, ...]
    allowed_endpoints: tuple[str, ...]
    upstreams: Mapping[str, str]
    max_body_bytes: int
    max_token_expiration: int
    allowed_hosts: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.route, str) or not self.route.startswith("/"):
            raise InvalidSetting("route", "must be an absolute path such as /api/fal/proxy")
        if "?" in self.route or "#" in self.route:
            raise InvalidSetting("route", "must be an absolute path such as /api/fal/proxy")
        _strings("allowed_urls", self.allowed_urls)
        _strings("allowed_endpoints", self.allowed_endpoints)
        _strings("allowed_hosts", self.allowed_hosts)
        _positive("max_body_bytes", self.max_body_bytes, integer=True)
        _positive("max_token_expiration", self.max_token_expiration, integer=True)
        # Compiled one list at a time, so the error names the list that is wrong.
        for name, urls, endpoints in (
            ("allowed_urls", self.allowed_urls, ()),
            ("allowed_endpoints", self.allowed_urls, self.allowed_endpoints),
        ):
            try:
                Policy(urls, endpoints, self.max_token_expiration)
            except (ValueError, TypeError) as exc:
                raise InvalidSetting(name, str(exc)) from None
        for host, base in self.upstreams.items():
            _check_upstream(host, base)

    def policy(self) -> Policy:
        return Policy(self.allowed_urls, self.allowed_endpoints, self.max_token_expiration)


def _check_upstream(host: str, base: str) -> None:
    if host not in ALLOWED_HOSTS:
        known = ", ".join(sorted(ALLOWED_HOSTS))
        raise InvalidSetting("upstreams", f"maps unknown host {host!r} (known: {known})")
    if not isinstance(base, str):
        raise InvalidSetting("upstreams", f"for {host} must be a base URL string")
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSetting(
            "upstreams", f"for {host} must be an http(s) base URL, got {mask_url(base)!r}"
        )
    if parts.query or parts.fragment or base.endswith("/"):
        raise InvalidSetting(
            "upstreams", f"for {host} must have no query, fragment or trailing slash"
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How each call reaches the upstream: every wait in seconds (positive), and its TLS trust."""

    connect_timeout: float
    upstream_timeout: float
    stream_idle_timeout: float
    body_timeout: float
    body_deadline: float
    header_timeout: float
    shutdown_grace: float
    upstream_ca_file: str | None

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.name != "upstream_ca_file":
                _positive(item.name, getattr(self, item.name))
        if self.upstream_ca_file is not None:
            _ca_bundle("upstream_ca_file", self.upstream_ca_file)


def _ca_bundle(name: str, path: object) -> None:
    """A CA file that cannot be loaded stops start-up, not the first HTTPS call."""
    if not isinstance(path, str) or not path:
        raise InvalidSetting(name, "must be the path of a PEM CA bundle")
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise InvalidSetting(name, f"names no readable file: {path!r}") from None
    except (OSError, ValueError):  # ssl.SSLError is an OSError: not PEM, or no certificate
        raise InvalidSetting(name, f"is not a PEM CA bundle: {path!r}") from None


@dataclass(frozen=True, slots=True)
class WebSocketLimits:
    """The realtime relay's frame size, idle and keep-alive times, and per-identity caps."""

    ws_max_message_bytes: int
    ws_idle_timeout: float
    ws_ping_interval: float
    ws_ping_timeout: float
    ws_max_queue: int
    ws_message_rate: str | None
    ws_max_sockets: int | None

    def __post_init__(self) -> None:
        _positive("ws_max_message_bytes", self.ws_max_message_bytes, integer=True)
        _positive("ws_max_queue", self.ws_max_queue, integer=True)
        for name in ("ws_idle_timeout", "ws_ping_interval", "ws_ping_timeout"):
            _positive(name, getattr(self, name))
        if self.ws_max_sockets is not None:
            _positive("ws_max_sockets", self.ws_max_sockets, integer=True)
        if self.ws_message_rate is not None and not is_single_rate(self.ws_message_rate):
            raise InvalidSetting(
                "ws_message_rate",
                f"must be one positive rate such as 10/second, got {self.ws_message_rate!r}",
            )


@dataclass(frozen=True, slots=True)
class RateLimiting:
    """Rules, their storage, and how anonymous callers are told apart."""

    rate_limits: tuple[RateLimit, ...]
    redis_url: str | None
    rate_limit_fail_open: bool
    per_worker_limits: bool
    trusted_proxies: tuple[str, ...]
    ipv6_prefix: int

    def __post_init__(self) -> None:
        if not all(isinstance(rule, RateLimit) for rule in self.rate_limits):
            raise InvalidSetting("rate_limits", "must hold RateLimit rules (or their text form)")
        if self.redis_url is not None:
            scheme = urlsplit(str(self.redis_url).removeprefix("async+")).scheme
            if scheme not in REDIS_SCHEMES:
                raise InvalidSetting("redis_url", "must be a redis:// or rediss:// URL")
            _extra_installed("redis_url", "redis", "redis")
        _boolean("rate_limit_fail_open", self.rate_limit_fail_open)
        _boolean("per_worker_limits", self.per_worker_limits)
        _strings("trusted_proxies", self.trusted_proxies)
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise InvalidSetting("trusted_proxies", f"has a bad entry: {exc}") from None
        prefix = self.ipv6_prefix
        if isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 128:
            raise InvalidSetting("ipv6_prefix", "must be a prefix length between 1 and 128")


@dataclass(frozen=True, slots=True)
class Auth:
    """Who may call: static tokens, JWTs (shared secret or JWKS), anonymity, token minting."""

    auth_tokens: tuple[str, ...]
    jwt_secret: str | None
    jwks_url: str | None
    jwt_audience: str | None
    jwt_issuer: str | None
    allow_anonymous: bool
    jwks_cache_seconds: float
    token_minting: bool

    def __post_init__(self) -> None:
        if not all(isinstance(token, str) for token in self.auth_tokens) or any(
            not token or token != token.strip() for token in self.auth_tokens
        ):
            raise InvalidSetting(
                "auth_tokens", "has a token that is empty or has surrounding whitespace"
            )
        for name in ("jwt_secret", "jwks_url", "jwt_audience", "jwt_issuer"):
            _optional_text(name, getattr(self, name))
        if self.jwt_secret is not None and self.jwks_url is not None:
            raise InvalidSetting("jwt_secret", "and jwks_url: set only one", others=("jwks_url",))
        if self.jwt_secret is not None and len(self.jwt_secret) < MIN_JWT_SECRET_LENGTH:
            raise InvalidSetting(
                "jwt_secret", "must be at least 32 characters (RFC 7518 section 3.2)"
            )
        if self.jwks_url is not None:
            _http_url("jwks_url", self.jwks_url, loopback_http=True)
            # Every algorithm accepted from a JWKS is asymmetric: PyJWT needs cryptography.
            _extra_installed("jwks_url", "cryptography", "jwks")
        _boolean("allow_anonymous", self.allow_anonymous)
        _boolean("token_minting", self.token_minting)
        _positive("jwks_cache_seconds", self.jwks_cache_seconds)

    @property
    def authenticates(self) -> bool:
        """True when a built-in check can give a call an identity."""
        return bool(self.auth_tokens or self.jwt_secret or self.jwks_url)


@dataclass(frozen=True, slots=True)
class Cors:
    """Browser origins allowed to call (``*`` for any); empty: no CORS answers."""

    cors_origins: tuple[str, ...]

    def __post_init__(self) -> None:
        _strings("cors_origins", self.cors_origins)
        for origin in self.cors_origins:
            if origin == "*":
                continue
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
                raise InvalidSetting(
                    "cors_origins", f"must hold scheme://host[:port] origins, got {origin!r}"
                )


@dataclass(frozen=True, slots=True)
class Operations:
    """Health, readiness and metrics endpoints, log format, and the fake to call instead."""

    health_path: str
    ready_path: str
    metrics_path: str
    metrics: bool
    metrics_token: str | None
    log_format: str
    access_log_format: str
    fake_url: str | None
    server: str

    def __post_init__(self) -> None:
        for name in ("health_path", "ready_path", "metrics_path"):
            _path(name, getattr(self, name))
        _boolean("metrics", self.metrics)
        _optional_text("metrics_token", self.metrics_token)
        if self.metrics_token is not None and self.metrics_token != self.metrics_token.strip():
            raise InvalidSetting("metrics_token", "has surrounding whitespace")
        for name in ("log_format", "access_log_format"):
            if getattr(self, name) not in LOG_FORMATS:
                raise InvalidSetting(name, f"must be one of {', '.join(LOG_FORMATS)}")
        if self.fake_url is not None:
            _http_url("fake_url", self.fake_url)
        if self.server not in SERVERS:
            raise InvalidSetting("server", f"must be one of {', '.join(SERVERS)}")


@dataclass(frozen=True, slots=True)
class Hooks:
    """The code hooks of a call (see :mod:`falproxy.core.hooks`); each must be callable."""

    authenticate: tuple[Authenticate, ...]
    before_request: tuple[BeforeRequest, ...]
    resolve_key: tuple[ResolveKey, ...]
    on_event: tuple[OnEvent, ...]

    def __post_init__(self) -> None:
        for item in fields(self):
            if not all(callable(hook) for hook in getattr(self, item.name)):
                raise InvalidSetting(item.name, "must hold async callables only")


def check_credential(credential: object) -> None:
    if credential is not None and not isinstance(credential, FalCredential):
        raise InvalidSetting("credential", "must be a FalCredential (or the key as a string)")
