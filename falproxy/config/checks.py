"""Start-up validation of the identity, limit, CORS and hook settings of ``ProxyConfig``.

Kept apart from ``config.py`` so the core settings module stays one screen; the rules are
the same: a bad value stops the process with one line that names the setting, never its
secret value.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from falproxy.core.client_address import parse_networks
from falproxy.core.errors import ConfigError
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

ACCESS_LOG_FORMATS = ("text", "json")
HOOK_KINDS = ("authenticate", "before_request", "resolve_key", "on_event")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def check_hook_settings(config: ProxyConfig) -> None:
    """Validate (and normalise to tuples) the settings added for hooks."""
    for name in (
        "auth_tokens",
        "trusted_proxies",
        "cors_origins",
        "rate_limits",
        "allowed_hosts",
        *HOOK_KINDS,
    ):
        object.__setattr__(config, name, tuple(getattr(config, name)))
    if any(not token or token != token.strip() for token in config.auth_tokens):
        raise ConfigError("auth_tokens: a token is empty or has surrounding whitespace")
    if config.jwt_secret is not None and config.jwks_url is not None:
        raise ConfigError("set only one of jwt_secret and jwks_url")
    if config.jwt_secret is not None and len(config.jwt_secret) < 32:
        raise ConfigError("jwt_secret must be at least 32 characters (RFC 7518 section 3.2)")
    if config.jwks_url is not None:
        _check_jwks_url(config.jwks_url)
    if config.redis_url is not None and not _is_redis_url(config.redis_url):
        raise ConfigError("redis_url must be a redis:// or rediss:// URL")
    try:
        parse_networks(config.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from None
    for origin in config.cors_origins:
        _check_origin(origin)
    if config.access_log_format not in ACCESS_LOG_FORMATS:
        raise ConfigError(f"access_log_format must be one of {', '.join(ACCESS_LOG_FORMATS)}")
    for kind in HOOK_KINDS:
        if not all(callable(hook) for hook in getattr(config, kind)):
            raise ConfigError(f"{kind}: every hook must be an async callable")


def has_authentication(config: ProxyConfig) -> bool:
    """True when some check can give a call an identity."""
    return bool(config.auth_tokens or config.jwt_secret or config.jwks_url or config.authenticate)


def authentication_warnings(config: ProxyConfig) -> list[str]:
    """The start-up warning for a real key that anyone on the network may use."""
    credential = config.credential
    real_key = credential is not None and credential.reveal() != FAKE_CREDENTIAL_VALUE
    if not real_key or has_authentication(config) or config.allow_anonymous:
        return []
    return [
        "no authentication: anyone who can reach this port can call the allowed fal "
        "endpoints with your key and spend your fal credits (set FALPROXY_AUTH_TOKENS, "
        "FALPROXY_JWT_SECRET or FALPROXY_JWKS_URL; FALPROXY_ALLOW_ANONYMOUS=true "
        "silences this warning)"
    ]


def parse_bool(variable: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{variable} must be true or false")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``****``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:****@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _is_redis_url(url: str) -> bool:
    scheme = urlsplit(url.removeprefix("async+")).scheme
    return scheme in ("redis", "rediss", "redis+unix")


def _check_jwks_url(url: str) -> None:
    parts = urlsplit(url)
    loopback = False
    try:
        loopback = ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        loopback = parts.hostname == "localhost"
    if not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        raise ConfigError("jwks_url must be https (plain http only on loopback)")


def _check_origin(origin: str) -> None:
    if origin == "*":
        return
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise ConfigError(f"cors_origins: expected scheme://host[:port], got {origin!r}")
