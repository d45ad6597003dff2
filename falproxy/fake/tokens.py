"""Short-lived JWT-looking tokens, minted at ``POST rest.fal.ai/tokens/`` (docs/fal-protocol.md §9).

A token lists app *aliases* and an expiry; ``fal.run`` and ``queue.fal.run`` accept it as
``?fal_jwt_token=`` for those aliases only. The fake remembers what it minted instead of
verifying signatures, but still signs with a per-process secret so tokens look real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass

from .errors import FakeError
from .inputs import InputError


@dataclass(frozen=True)
class TokenGrant:
    """What a token allows: these aliases until ``expires_at`` (unix seconds)."""

    allowed_apps: frozenset[str]
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, object]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def parse_token_request(body: object) -> tuple[list[str], int]:
    """Validate ``{"allowed_apps": [str, ...], "token_expiration": int}``."""
    if not isinstance(body, dict):
        raise InputError((("body",), "Input should be a JSON object", "dict_type"))
    apps = body.get("allowed_apps")
    if not isinstance(apps, list) or not apps or not all(isinstance(a, str) and a for a in apps):
        msg = "Input should be a non-empty list of app aliases"
        raise InputError((("body", "allowed_apps"), msg, "list_type"))
    expiration = body.get("token_expiration")
    if isinstance(expiration, bool) or not isinstance(expiration, int) or expiration < 1:
        msg = "Input should be a positive integer"
        raise InputError((("body", "token_expiration"), msg, "int_type"))
    return apps, expiration


class TokenStore:
    """Mints tokens and answers whether one grants an alias right now."""

    def __init__(self) -> None:
        self._secret = secrets.token_bytes(32)
        self._grants: dict[str, TokenGrant] = {}

    def mint(self, allowed_apps: list[str], expiration: int) -> str:
        """A new ``header.payload.signature`` token, remembered until reset."""
        now = int(time.time())
        header = _segment({"alg": "HS256", "typ": "JWT"})
        claims = {"sub": "fake-fal", "allowed_apps": allowed_apps, "iat": now}
        payload = _segment({**claims, "exp": now + expiration, "jti": uuid.uuid4().hex})
        signature = hmac.new(self._secret, f"{header}.{payload}".encode(), hashlib.sha256)
        token = f"{header}.{payload}.{_b64(signature.digest())}"
        self._grants[token] = TokenGrant(frozenset(allowed_apps), now + expiration)
        return token

    def allows(self, token: str, alias: str) -> bool:
        """``True`` if ``token`` was minted here, is unexpired and lists ``alias``."""
        grant = self._grants.get(token)
        if grant is None:
            return False
        return time.time() < grant.expires_at and alias in grant.allowed_apps

    def clear(self) -> None:
        """Forget every token."""
        self._grants.clear()


def bad_json() -> FakeError:
    """The 400 for a body that is not JSON at all."""
    return FakeError(400, {"detail": "Body must be JSON"})
