"""Built-in ``authenticate`` hooks for the sidecar: static bearer tokens and JWTs.

A single-page app that already logs its users in (with any provider that issues JWTs)
sends ``Authorization: Bearer <token>`` to the proxy; these hooks turn that header into
an :class:`~falproxy.core.hooks.Identity` without custom code. The header is never forwarded
upstream (``headers.py`` does not allow it), so the browser's token never reaches fal.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from falproxy.core.errors import IdentityUnavailable, Unauthorized
from falproxy.core.hooks import Identity, RequestContext

if TYPE_CHECKING:
    import jwt
# PyJWT and httpx are imported where tokens are verified and key sets fetched: a proxy
# without JWT settings never loads them (about 100 ms off every start and `import falproxy`).

BEARER_PREFIX = "bearer "  # RFC 6750 section 2.1; the scheme is case-insensitive
# Asymmetric algorithms accepted from a JWKS; "none" and HMAC-with-public-key are excluded.
JWKS_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA")
SECRET_ALGORITHMS = ("HS256", "HS384", "HS512")
JWKS_CACHE_SECONDS = 300  # how long fetched signing keys are trusted before a refetch
# At most one JWKS fetch per this many seconds (per process), whatever tokens arrive: an
# unknown kid triggers a refetch (a rotated key works on first sight), but random kids
# cannot flood the identity provider.
JWKS_MIN_REFETCH_SECONDS = 5.0
# A key set is a few KiB; a larger answer is not one (and is not buffered further).
MAX_JWKS_BYTES = 1024 * 1024
# RFC 7517 section 4.2: keys marked for encryption never verify signatures.
SIGNING_USES = frozenset({"sig", None})
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


class JwksKeys:
    """The signing keys of a JWKS URL, each trusted for at most ``cache_seconds``.

    The whole set is fetched again once it is ``cache_seconds`` old, so a key the identity
    provider removed stops working within that time; until a fetch succeeds no key is
    trusted (fail closed: 503). A ``kid`` not in the set triggers an early refetch, since
    the provider may have just rotated. Fetches are serialised and at most one starts per
    ``min_refetch_seconds``, so neither random ``kid``s nor a provider outage can turn
    calls into a flood of fetches.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = JWKS_CACHE_SECONDS,
        min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS,
        timeout: float = JWKS_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._cache_seconds = cache_seconds
        self._min_refetch = min_refetch_seconds
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # when the cached set was fetched
        self._attempted_at: float | None = None  # when the last fetch started
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str | None) -> jwt.PyJWK:
        """The key named ``kid`` (a token without ``kid``: the set's only key).

        Raises ``IdentityUnavailable`` when no fresh set can be had, ``Unauthorized`` when
        a fresh set does not hold the key.
        """
        if self._is_stale() or kid not in self._keys:
            async with self._lock:  # one fetch at a time; waiters see its result
                if self._is_stale() or kid not in self._keys:
                    await self._refresh()
        if self._is_stale():
            raise IdentityUnavailable(headers={"retry-after": "5"})
        key = self._keys.get(kid)
        if key is None:
            raise Unauthorized("The token's signing key is unknown", headers=CHALLENGE)
        return key

    def _is_stale(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._clock() - fetched >= self._cache_seconds

    async def _refresh(self) -> None:
        now = self._clock()
        if self._attempted_at is not None and now - self._attempted_at < self._min_refetch:
            return  # fetched (or tried) moments ago: keep what we have, however stale
        self._attempted_at = now
        import httpx
        import jwt

        try:
            document = await self._fetch()
            keys = signing_keys(document)
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            if self._is_stale():
                self._keys = {}  # never trust a key past its lifetime, even if the IdP is down
            return
        self._keys, self._fetched_at = keys, now

    async def _fetch(self) -> object:
        import httpx

        timeout = httpx.Timeout(self._timeout)
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client,
            client.stream("GET", self._url, headers={"accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = b""
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("the key set is too large")
        return json.loads(body)


def signing_keys(document: object) -> dict[str | None, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by ``kid`` (None: the only key)."""
    import jwt

    if not isinstance(document, dict):
        raise ValueError("the key set is not a JSON object")
    found = jwt.PyJWKSet.from_dict(document).keys  # skips keys it cannot use
    keys: dict[str | None, jwt.PyJWK] = {
        key.key_id: key for key in found if key.public_key_use in SIGNING_USES and key.key_id
    }
    signing = [key for key in found if key.public_key_use in SIGNING_USES]
    if len(signing) == 1:
        keys[None] = signing[0]
    return keys


class JWTVerifier:
    """Verify ``Authorization: Bearer <jwt>`` with a shared secret or a JWKS URL.

    The identity is the token's ``sub`` claim; the verified claims ride along for
    ``before_request`` and ``resolve_key`` hooks (plans, tenants). A token that looks
    like a JWT but fails verification is refused with 401 here, rather than silently
    becoming an anonymous call. JWKS keys are fetched without blocking the event loop
    and trusted for ``jwks_cache_seconds`` at most (see :class:`JwksKeys`).
    """

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        jwks_cache_seconds: float = JWKS_CACHE_SECONDS,
        jwks_min_refetch_seconds: float = JWKS_MIN_REFETCH_SECONDS,
    ) -> None:
        if (secret is None) == (jwks_url is None):
            raise ValueError("give exactly one of secret or jwks_url")
        self._secret = secret
        self._jwks = (
            JwksKeys(
                jwks_url,
                cache_seconds=jwks_cache_seconds,
                min_refetch_seconds=min(jwks_min_refetch_seconds, jwks_cache_seconds),
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
        import jwt

        try:
            if self._jwks is not None:
                kid = jwt.get_unverified_header(token).get("kid")
                signing = await self._jwks.key_for(kid if isinstance(kid, str) else None)
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
        except jwt.PyJWTError:
            raise Unauthorized("Invalid or expired token", headers=CHALLENGE) from None
