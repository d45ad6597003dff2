"""JWKS keys are trusted for ``jwks_cache_seconds`` at most, and rotation works on first sight.

Issue 12 item 5, against a real identity provider on loopback: a Starlette app serving a key
set the test changes while the proxy runs, counting how often the proxy fetches it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from falproxy.admission.auth import JWKS_MIN_REFETCH_SECONDS
from tests.conftest import serve
from tests.support.hook_support import bearer, live_proxy, run


@dataclass
class IdentityProvider:
    """The key set served at ``url``; edit ``keys`` to rotate or revoke."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    fetches: int = 0
    down: bool = False
    url: str = ""

    async def jwks(self, request: Request) -> Response:
        self.fetches += 1
        if self.down:
            return JSONResponse({"error": "maintenance"}, status_code=503)
        return JSONResponse({"keys": list(self.keys.values())})


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider()
    app = Starlette(routes=[Route("/.well-known/jwks.json", provider.jwks)])
    with serve(app) as url:
        provider.url = f"{url}/.well-known/jwks.json"
        yield provider


class SigningKey:
    """A private key and its public JWK under a fresh ``kid``."""

    def __init__(self, kind: str = "RSA") -> None:
        self.kid = f"key-{uuid.uuid4().hex[:8]}"
        if kind == "RSA":
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
            self.algorithm = "RS256"
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            public = ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
            self.algorithm = "ES256"
        self.jwk = {**public, "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def token(self, kid: str | None = None) -> dict[str, str]:
        claims = {"sub": "user-7", "exp": int(time.time()) + 300}
        headers = {"kid": kid or self.kid}
        return bearer(jwt.encode(claims, self.private, self.algorithm, headers=headers))


def test_a_key_removed_from_the_set_stops_working_once_the_cache_time_is_up(
    fake_url: str, idp: IdentityProvider
) -> None:
    old, new = SigningKey(), SigningKey("EC")
    idp.keys = {old.kid: old.jwk}
    with live_proxy(fake_url, jwks_url=idp.url, jwks_cache_seconds=1.0) as client:
        assert run(client, **old.token()).status_code == 200
        idp.keys = {new.kid: new.jwk}  # the provider revokes the old key
        time.sleep(1.2)
        refused = run(client, **old.token())
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert run(client, **new.token()).status_code == 200


def test_a_key_just_added_to_the_set_is_accepted_on_first_sight(
    fake_url: str, idp: IdentityProvider
) -> None:
    first, rotated = SigningKey(), SigningKey()
    idp.keys = {first.kid: first.jwk}
    with live_proxy(fake_url, jwks_url=idp.url) as client:  # default cache: 300 s
        assert run(client, **first.token()).status_code == 200
        idp.keys[rotated.kid] = rotated.jwk
        # The set was fetched moments ago; the refetch an unknown kid triggers is due once
        # JWKS_MIN_REFETCH_SECONDS have passed (PyJWT's client waited 30 s and said 401).
        time.sleep(JWKS_MIN_REFETCH_SECONDS + 0.3)
        assert run(client, **rotated.token()).status_code == 200
        assert run(client, **first.token()).status_code == 200
    assert idp.fetches == 2


def test_random_kids_cannot_flood_the_identity_provider(
    fake_url: str, idp: IdentityProvider
) -> None:
    key = SigningKey()
    idp.keys = {key.kid: key.jwk}
    with live_proxy(fake_url, jwks_url=idp.url) as client:
        assert run(client, **key.token()).status_code == 200
        started = time.monotonic()
        statuses = {run(client, **key.token(kid=uuid.uuid4().hex)).status_code for _ in range(40)}
        elapsed = time.monotonic() - started
        assert statuses == {401}
        assert run(client, **key.token()).status_code == 200
    allowed = 1 + 1 + int(elapsed / JWKS_MIN_REFETCH_SECONDS)  # first fetch, one per interval
    assert idp.fetches <= allowed


def test_an_expired_set_is_not_trusted_while_the_provider_is_down(
    fake_url: str, idp: IdentityProvider
) -> None:
    key = SigningKey()
    idp.keys = {key.kid: key.jwk}
    with live_proxy(fake_url, jwks_url=idp.url, jwks_cache_seconds=1.0) as client:
        assert run(client, **key.token()).status_code == 200
        idp.down = True
        time.sleep(1.2)
        unavailable = run(client, **key.token())
        assert unavailable.status_code == 503
        assert unavailable.headers["retry-after"] == "5"
        idp.down = False
        time.sleep(1.1)  # the next fetch is due
        assert run(client, **key.token()).status_code == 200
