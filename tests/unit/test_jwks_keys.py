"""Which keys of a JWKS document verify tokens, and when a fetched set stops being trusted.

The key set is served by a real loopback server in ``tests/live/test_jwks.py``; here the
rules alone: the document's usable keys, and the expiry decided by a fake clock (the only
stand-in: waiting minutes of real time for a cache to expire is not a unit test).
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from falproxy.admission.auth import JwksKeys, signing_keys


def jwk(kid: str | None, use: str | None = "sig") -> dict[str, Any]:
    public = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True)
    extra = {k: v for k, v in (("kid", kid), ("use", use)) if v is not None}
    return {**public, "alg": "ES256", **extra}


def test_signing_keys_are_indexed_by_kid() -> None:
    keys = signing_keys({"keys": [jwk("a"), jwk("b")]})
    assert sorted(k for k in keys if k) == ["a", "b"]
    assert None not in keys  # a token without kid cannot pick among several keys


def test_encryption_keys_never_verify_signatures() -> None:
    keys = signing_keys({"keys": [jwk("sig-key"), jwk("enc-key", use="enc")]})
    assert "enc-key" not in keys
    assert keys[None] is keys["sig-key"]  # the only signing key also serves kid-less tokens


def test_a_key_without_use_is_a_signing_key() -> None:
    assert "plain" in signing_keys({"keys": [jwk("plain", use=None)]})


@pytest.mark.parametrize("document", [[], "keys", {"keys": []}, {"keys": [{"kty": "nope"}]}])
def test_a_document_without_usable_keys_is_refused(document: object) -> None:
    with pytest.raises(Exception):  # noqa: B017 (ValueError or PyJWKSetError, both caught)
        signing_keys(document)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_fetched_set_is_trusted_for_cache_seconds_only() -> None:
    clock = Clock()
    fetched: list[float] = []
    keys = JwksKeys("http://idp.invalid/jwks", cache_seconds=300, clock=clock)

    async def fetch() -> object:
        fetched.append(clock.now)
        return {"keys": [jwk("a")]}

    keys._fetch = fetch  # type: ignore[method-assign]
    await keys.key_for("a")
    clock.now += 299
    await keys.key_for("a")
    assert len(fetched) == 1
    clock.now += 1
    await keys.key_for("a")
    assert fetched == [1000.0, 1300.0]
