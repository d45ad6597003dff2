"""The groups of settings: a heading for the reference, and the rules each group checks.

Which setting belongs to which group is said once, by the settings table
(``group=`` beside each field of :class:`~falproxy.config.settings.ProxyConfig`); this
module only names the groups, in the order the reference lists them, and holds each
group's check. A config builds every group once, at construction
(:func:`build`): a bad setting stops the process at start-up with one line instead of
failing on the first request. Checks see their own group's settings only (reading another
group's is an ``AttributeError``), so a rule lives with the settings it is about. Names
are ``ProxyConfig``'s, so an error (:class:`~falproxy.core.errors.InvalidSetting`) names
the setting, and the loader can rename it to the variable or file key the user wrote.
"""

from __future__ import annotations

import ipaddress
import math
import ssl
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from falproxy.config.budgets import check_budgets
from falproxy.config.extras import install_hint, is_installed
from falproxy.core.client_address import parse_networks
from falproxy.core.errors import InvalidSetting
from falproxy.core.keys import FalCredential
from falproxy.core.policy import Policy
from falproxy.core.rate_rules import RateLimit, is_single_rate
from falproxy.core.redact import mask_url
from falproxy.core.targets import MAPPABLE_HOSTS

if TYPE_CHECKING:
    from falproxy.config.table import Setting

LOG_FORMATS = ("text", "json")
# falproxy serve's HTTP front ends (standalone/cli.py): the native protocol or uvicorn's.
SERVERS = ("native", "asgi")
# RFC 7518 section 3.2: an HMAC key at least as long as the hash output (256 bits).
MIN_JWT_SECRET_LENGTH = 32
REDIS_SCHEMES = ("redis", "rediss", "redis+unix")


class GroupValues(Mapping[str, Any]):
    """One group's settings of a config, read-only, by attribute or by key."""

    __slots__ = ("_name", "_values")

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        self._name = name
        self._values = MappingProxyType(dict(values))

    def __getattr__(self, setting: str) -> Any:
        try:
            return self._values[setting]
        except KeyError:
            raise AttributeError(f"group {self._name!r} has no setting {setting!r}") from None

    def __getitem__(self, setting: str) -> Any:
        return self._values[setting]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"<{self._name} settings: {', '.join(self._values)}>"


@dataclass(frozen=True, slots=True)
class Group:
    """A group of settings: its name in the table, its reference heading, its check."""

    name: str
    title: str
    check: Callable[[GroupValues], None]


def build(config: object, settings: Sequence[Setting]) -> Mapping[str, GroupValues]:
    """Every group of ``config``, each checked once; raises InvalidSetting on a bad value."""
    built = {}
    for group in GROUPS:
        members = {
            row.name: getattr(config, row.name) for row in settings if row.group == group.name
        }
        values = GroupValues(group.name, members)
        group.check(values)
        built[group.name] = values
    return MappingProxyType(built)


# --- Rules shared by several groups --------------------------------------------------


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


# --- One check per group ---------------------------------------------------------------


def _check_routing(values: GroupValues) -> None:
    """The key, the route, where calls go, and the fake to call instead."""
    check_credential(values.credential)
    route = values.route
    if not isinstance(route, str) or not route.startswith("/") or "?" in route or "#" in route:
        raise InvalidSetting("route", "must be an absolute path such as /api/fal/proxy")
    for host, base in values.upstreams.items():
        _check_upstream(host, base)
    _boolean("backup_domains", values.backup_domains)
    if values.fake_url is not None:
        _http_url("fake_url", values.fake_url)


def check_credential(credential: object) -> None:
    if credential is not None and not isinstance(credential, FalCredential):
        raise InvalidSetting("credential", "must be a FalCredential (or the key as a string)")


def _check_upstream(host: str, base: str) -> None:
    if host not in MAPPABLE_HOSTS:
        known = ", ".join(sorted(MAPPABLE_HOSTS))
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


def _check_allow_lists(values: GroupValues) -> None:
    """Which targets, apps and Host headers are served, and the token-minting rules."""
    _strings("allowed_urls", values.allowed_urls)
    _strings("allowed_endpoints", values.allowed_endpoints)
    _strings("allowed_hosts", values.allowed_hosts)
    _positive("max_token_expiration", values.max_token_expiration, integer=True)
    _boolean("token_minting", values.token_minting)
    # Compiled one list at a time, so the error names the list that is wrong.
    for name, urls, endpoints in (
        ("allowed_urls", values.allowed_urls, ()),
        ("allowed_endpoints", values.allowed_urls, values.allowed_endpoints),
    ):
        try:
            Policy(urls, endpoints, values.max_token_expiration)
        except (ValueError, TypeError) as exc:
            raise InvalidSetting(name, str(exc)) from None


_WAITS = (
    "connect_timeout", "upstream_timeout", "stream_idle_timeout", "shutdown_grace",
    "body_timeout", "body_deadline", "header_timeout",
)  # fmt: skip


def _check_limits(values: GroupValues) -> None:
    """Every wait in seconds (positive), the body cap, the upstream's TLS trust, the server."""
    _positive("max_body_bytes", values.max_body_bytes, integer=True)
    for name in _WAITS:
        _positive(name, values[name])
    if values.upstream_ca_file is not None:
        _ca_bundle("upstream_ca_file", values.upstream_ca_file)
    if values.server not in SERVERS:
        raise InvalidSetting("server", f"must be one of {', '.join(SERVERS)}")
    if values.max_connections is not None:
        _positive("max_connections", values.max_connections, integer=True)


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


def _check_websocket(values: GroupValues) -> None:
    """The realtime relay's frame size, idle and keep-alive times, and per-identity caps."""
    _positive("ws_max_message_bytes", values.ws_max_message_bytes, integer=True)
    _positive("ws_max_queue", values.ws_max_queue, integer=True)
    for name in ("ws_idle_timeout", "ws_ping_interval", "ws_ping_timeout"):
        _positive(name, values[name])
    if values.ws_max_sockets is not None:
        _positive("ws_max_sockets", values.ws_max_sockets, integer=True)
    rate = values.ws_message_rate
    if rate is not None and not is_single_rate(rate):
        raise InvalidSetting(
            "ws_message_rate", f"must be one positive rate such as 10/second, got {rate!r}"
        )


def _check_auth(values: GroupValues) -> None:
    """Who may call: static tokens, JWTs (shared secret or JWKS), anonymity."""
    tokens = values.auth_tokens
    if not all(isinstance(token, str) for token in tokens) or any(
        not token or token != token.strip() for token in tokens
    ):
        raise InvalidSetting(
            "auth_tokens", "has a token that is empty or has surrounding whitespace"
        )
    for name in ("jwt_secret", "jwks_url", "jwt_audience", "jwt_issuer"):
        _optional_text(name, values[name])
    if values.jwt_secret is not None and values.jwks_url is not None:
        raise InvalidSetting("jwt_secret", "and jwks_url: set only one", others=("jwks_url",))
    if values.jwt_secret is not None and len(values.jwt_secret) < MIN_JWT_SECRET_LENGTH:
        raise InvalidSetting("jwt_secret", "must be at least 32 characters (RFC 7518 section 3.2)")
    if values.jwks_url is not None:
        _http_url("jwks_url", values.jwks_url, loopback_http=True)
        # Every algorithm accepted from a JWKS is asymmetric: PyJWT needs cryptography.
        _extra_installed("jwks_url", "cryptography", "jwks")
    _boolean("allow_anonymous", values.allow_anonymous)
    _positive("jwks_cache_seconds", values.jwks_cache_seconds)


def _check_rate_limiting(values: GroupValues) -> None:
    """Rules, their storage, and how anonymous callers are told apart."""
    if not all(isinstance(rule, RateLimit) for rule in values.rate_limits):
        raise InvalidSetting("rate_limits", "must hold RateLimit rules (or their text form)")
    if values.redis_url is not None:
        scheme = urlsplit(str(values.redis_url).removeprefix("async+")).scheme
        if scheme not in REDIS_SCHEMES:
            raise InvalidSetting("redis_url", "must be a redis:// or rediss:// URL")
        _extra_installed("redis_url", "redis", "redis")
    _boolean("rate_limit_fail_open", values.rate_limit_fail_open)
    _boolean("per_worker_limits", values.per_worker_limits)
    _strings("trusted_proxies", values.trusted_proxies)
    try:
        parse_networks(values.trusted_proxies)
    except ValueError as exc:
        raise InvalidSetting("trusted_proxies", f"has a bad entry: {exc}") from None
    prefix = values.ipv6_prefix
    if isinstance(prefix, bool) or not isinstance(prefix, int) or not 1 <= prefix <= 128:
        raise InvalidSetting("ipv6_prefix", "must be a prefix length between 1 and 128")


def _check_cors(values: GroupValues) -> None:
    """Browser origins allowed to call (``*`` for any); empty: no CORS answers."""
    _strings("cors_origins", values.cors_origins)
    for origin in values.cors_origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
            raise InvalidSetting(
                "cors_origins", f"must hold scheme://host[:port] origins, got {origin!r}"
            )


def _check_operations(values: GroupValues) -> None:
    """Health, readiness and metrics endpoints, and the log format."""
    for name in ("health_path", "ready_path", "metrics_path"):
        _path(name, values[name])
    _boolean("metrics", values.metrics)
    token = values.metrics_token
    _optional_text("metrics_token", token)
    if token is not None and token != token.strip():
        raise InvalidSetting("metrics_token", "has surrounding whitespace")
    for name in ("log_format", "access_log_format"):
        if values[name] not in LOG_FORMATS:
            raise InvalidSetting(name, f"must be one of {', '.join(LOG_FORMATS)}")


def _check_hooks(values: GroupValues) -> None:
    """The code hooks of a call (see :mod:`falproxy.core.hooks`); each must be callable."""
    for name, hooks in values.items():
        if not all(callable(hook) for hook in hooks):
            raise InvalidSetting(name, "must hold async callables only")


# The groups in the order the reference lists them; ``ProxyConfig`` has one attribute per
# group (``config.timeouts``) and each setting names its group in the table.
GROUPS = (
    Group("routing", "Key and routing", _check_routing),
    Group("allow_lists", "Allow-lists", _check_allow_lists),
    Group("timeouts", "Limits and timeouts", _check_limits),
    Group("websocket", "WebSocket relay", _check_websocket),
    Group("auth", "Identity", _check_auth),
    Group("rate_limiting", "Rate limits", _check_rate_limiting),
    Group("budgets", "Ownership and budgets", check_budgets),
    Group("cors", "Browsers", _check_cors),
    Group("operations", "Logs and metrics", _check_operations),
    Group("hooks", "Hooks (code only)", _check_hooks),
)
GROUP_NAMES = frozenset(group.name for group in GROUPS)
