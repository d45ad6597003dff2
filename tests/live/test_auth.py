"""Built-in identity: static bearer tokens and JWTs (shared secret, and JWKS over loopback)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from falproxy import ProxyEvent
from tests.conftest import serve
from tests.support.hook_support import bearer, live_proxy, run

SECRET = "a-shared-secret-of-at-least-32-characters!"
TOKENS = ("first-static-token", "second-static-token")


def make_jwt(key: Any, algorithm: str = "HS256", **claims: Any) -> str:
    payload = {"sub": "user-42", "exp": int(time.time()) + 300, **claims}
    headers = {"kid": "test-key"} if algorithm.startswith("RS") else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def test_static_tokens(fake_url: str) -> None:
    events: list[ProxyEvent] = []

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    with live_proxy(fake_url, auth_tokens=TOKENS, on_event=(record,)) as client:
        assert run(client, **bearer("second-static-token")).status_code == 200
        assert run(client, **{"authorization": "bearer first-static-token"}).status_code == 200
        for headers in (
            {},
            bearer("wrong"),
            bearer("first-static-token-x"),
            {"authorization": "Basic abc"},
        ):
            refused = run(client, **headers)
            assert refused.status_code == 401, headers
            assert refused.json()["detail"]
            assert refused.headers["www-authenticate"] == "Bearer"
    identities = sorted(e.identity for e in events if e.identity)
    assert identities == ["token-1", "token-2"]  # the position, never the token


def test_allow_anonymous_still_refuses_bad_tokens(fake_url: str) -> None:
    with live_proxy(fake_url, auth_tokens=TOKENS, allow_anonymous=True) as client:
        assert run(client).status_code == 200
        assert run(client, **bearer("not-a-token")).status_code == 401


def test_jwt_shared_secret(fake_url: str) -> None:
    settings = {"jwt_secret": SECRET, "jwt_audience": "my-app", "jwt_issuer": "https://idp"}
    good = {"aud": "my-app", "iss": "https://idp"}
    with live_proxy(fake_url, **settings) as client:
        assert run(client, **bearer(make_jwt(SECRET, **good))).status_code == 200
        bad = [
            make_jwt("another-secret-that-is-32-chars-long!!", **good),
            make_jwt(SECRET, aud="other-app", iss="https://idp"),
            make_jwt(SECRET, aud="my-app", iss="https://evil"),
            make_jwt(SECRET, **good, exp=int(time.time()) - 120),
            jwt.encode({"sub": "x", "exp": int(time.time()) + 60}, None, algorithm="none"),
        ]
        for token in bad:
            response = run(client, **bearer(token))
            assert response.status_code == 401, jwt.decode(
                token, options={"verify_signature": False}
            )
            assert response.json()["detail"] in ("Invalid or expired token",)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """An identity provider's JWKS document, served on a loopback port."""
    public = RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    document = {"keys": [{**public, "kid": "test-key", "use": "sig", "alg": "RS256"}]}

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse(document)

    with serve(Starlette(routes=[Route("/.well-known/jwks.json", keys)])) as url:
        yield f"{url}/.well-known/jwks.json"


def test_jwt_from_jwks(fake_url: str, jwks_url: str, rsa_key: rsa.RSAPrivateKey) -> None:
    events: list[ProxyEvent] = []

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with live_proxy(fake_url, jwks_url=jwks_url, on_event=(record,)) as client:
        assert run(client, **bearer(make_jwt(rsa_key, "RS256"))).status_code == 200
        assert run(client, **bearer(make_jwt(other_key, "RS256"))).status_code == 401
        # An HMAC token "signed" with the public key must not pass as the RSA key.
        assert run(client, **bearer(make_jwt("x" * 40))).status_code == 401
        assert run(client).status_code == 401
    assert [e.identity for e in events if e.status == 200] == ["user-42"]


def test_jwks_down_is_503_not_401(fake_url: str, rsa_key: rsa.RSAPrivateKey) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/jwks.json"
    with live_proxy(fake_url, jwks_url=dead) as client:
        response = run(client, **bearer(make_jwt(rsa_key, "RS256")))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert "try again" in response.json()["detail"]
