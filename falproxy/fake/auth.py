"""Who may call the fake's fal endpoints.

``Authorization: Key <key>`` (optionally one exact key, compared in constant time) or a
``fal_jwt_token`` query parameter minted by the fake and granting the called alias. Failures
never say what was sent: the key must not leak, not even back to its sender.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request

from .errors import detail
from .stats import AUTHORIZED_SCOPE_KEY
from .tokens import TokenStore

KEY_SCHEME = "key"  # fal's scheme word, matched case-insensitively
TOKEN_QUERY_PARAM = "fal_jwt_token"


def key_from_header(value: str | None) -> str | None:
    """The credential of an ``Authorization: Key <credential>`` header, else ``None``."""
    if value is None:
        return None
    scheme, _, credential = value.strip().partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == KEY_SCHEME and credential else None


def key_accepted(credential: str | None, expected: str | None) -> bool:
    """Any non-empty key when none is configured, else exactly the configured one."""
    if credential is None:
        return False
    if expected is None:
        return True
    return hmac.compare_digest(credential.encode(), expected.encode())


def authorize(
    request: Request, expected_key: str | None, tokens: TokenStore | None, alias: str | None
) -> None:
    """Raise 401 unless the request carries an accepted key, or a token for ``alias``.

    ``tokens`` is ``None`` where tokens are not accepted (the REST host).
    """
    if key_accepted(key_from_header(request.headers.get("authorization")), expected_key):
        request.scope[AUTHORIZED_SCOPE_KEY] = True
        return
    token = request.query_params.get(TOKEN_QUERY_PARAM)
    if tokens is not None and token and alias and tokens.allows(token, alias):
        request.scope[AUTHORIZED_SCOPE_KEY] = True
        return
    if token:
        raise detail(401, "Invalid, expired or foreign fal_jwt_token")
    raise detail(401, "Missing or invalid Authorization header; expected 'Key <key>'")
