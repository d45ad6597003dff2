"""Built-in ``authenticate`` hooks for the sidecar: static bearer tokens and JWTs.

A single-page app that already logs its users in (with any provider that issues JWTs)
sends ``Authorization: Bearer <token>`` to the proxy; these hooks turn that header into
an :class:`~falproxy.core.hooks.Identity` without custom code. The header is never forwarded
upstream (``headers.py`` does not allow it), so the browser's token never reaches fal.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
import jwt

from falproxy.core.errors import IdentityUnavailable, Unauthorized
from falproxy.core.hooks import Identity, RequestContext

BEARER_PREFIX = "bearer "  # RFC 6750 section 2.1; the scheme is case-insensitive
# Asymmetric algorithms accepted from a JWKS; "none" and HMAC-with-public-key are excluded.
JWKS_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
SECRET_ALGORITHMS = ("HS256", "HS384", "HS512")
JWKS_CACHE_SECONDS = 300  # how long fetched signing keys are trusted before a refetch
JWT_LEEWAY_SECONDS = 30  # clock skew tolerated on exp/nbf/iat
JWKS_TIMEOUT_SECONDS = 5.0  # an identity provider slower than this is treated as down
CHALLENGE = {"www-authenticate": "Bearer"}  # RFC 6750 section 3



def bearer_token(context: RequestContext) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    value = context.header("authorization")
    if value is None or not value.lower().startswith(BEARER_PREFIX):
        return None
    token = value[len(BEARER_PREFIX) :].strip()
    return token or None


class StaticTokens:
    """Accept any of a fixed set of tokens, compared in constant time.

    Every configured token is compared on every call, so the time taken says nothing
    about which token (or how much of one) matched. The identity is ``token-<n>``, the
    token's 1-based position in the configured list: it names the client in logs and
    rate limits without ever repeating the secret.
    """

    def __init__(self, tokens: Sequence[str]) -> None:
        self._digests = [hashlib.sha256(token.encode()).digest() for token in tokens]

    async def __call__(self, context: RequestContext) -> Identity | None:
        token = bearer_token(context)
        if token is None:
            return None
        offered = hashlib.sha256(token.encode()).digest()
        matched = 0
        for index, digest in enumerate(self._digests, start=1):
            if hmac.compare_digest(offered, digest):
                matched = index
        return Identity(f"token-{matched}", source="token") if matched else None


class JWTVerifier:
    """Verify ``Authorization: Bearer <jwt>`` with a shared secret or a JWKS URL.

    The identity is the token's ``sub`` claim; the verified claims ride along for
    ``before_request`` and ``resolve_key`` hooks (plans, tenants). A token that looks
    like a JWT but fails verification is refused with 401 here, rather than silently
    becoming an anonymous call. JWKS keys are fetched in a worker thread (PyJWT's client
    is blocking) and cached, so the event loop never waits on the identity provider.
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if (secret is None) == (jwks_url is None):
            raise ValueError("give exactly one of secret or jwks_url")
        self._secret = secret
        self._jwks = (
            jwt.PyJWKClient(
                jwks_url,
                cache_keys=True,
                lifespan=JWKS_CACHE_SECONDS,
                timeout=JWKS_TIMEOUT_SECONDS,
            )
            if jwks_url
            else None
        )
        self._audience = audience
        self._issuer = issuer

    async def __call__(self, context: RequestContext) -> Identity | None:
        token = bearer_token(context)
        if token is None or token.count(".") != 2:
            return None
        claims = await self._verify(token)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("The token has no subject", headers=CHALLENGE)
        return Identity(subject, claims=claims, source="jwt")

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            if self._jwks is not None:
                signing = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
                key: Any = signing.key
                algorithms: Sequence[str] = JWKS_ALGORITHMS
            else:
                key, algorithms = self._secret, SECRET_ALGORITHMS
            return jwt.decode(
                token,
                key,
                algorithms=list(algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=JWT_LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.PyJWKClientConnectionError:
            raise IdentityUnavailable(headers={"retry-after": "5"}) from None
        except jwt.PyJWKClientError:
            raise Unauthorized("The token's signing key is unknown", headers=CHALLENGE) from None
        except jwt.PyJWTError:
            raise Unauthorized("Invalid or expired token", headers=CHALLENGE) from None
