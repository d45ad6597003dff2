"""Start-up warnings read from a finished ``ProxyConfig`` (it is never changed here).

Validation lives with each group of settings (:mod:`falproxy.config.groups`); this module
only says what an operator must hear about a valid but risky configuration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from falproxy.core.keys import FAKE_CREDENTIAL_VALUE

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

HOOK_KINDS = ("authenticate", "before_request", "resolve_key", "on_event")


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
