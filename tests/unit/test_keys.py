"""The key: loaded from the environment, validated, and never shown."""

from __future__ import annotations

import pytest

from falproxy import ConfigError, FalCredential, ProxyConfig
from falproxy.config import SETTINGS
from falproxy.config.loader import load
from falproxy.core.keys import credential_from_env, key_shape_problem

SECRET = "0123456789abcdef0123456789abcdef:deadbeefdeadbeefdeadbeef"


def test_repr_and_str_are_masked() -> None:
    credential = FalCredential(SECRET)
    for shown in (repr(credential), str(credential), f"{credential}", credential.masked()):
        assert "deadbeef" not in shown
        assert "0123456789abcdef0123" not in shown


def test_authorization_header() -> None:
    assert FalCredential("id:secret").authorization == b"Key id:secret"


def test_from_fal_key() -> None:
    assert credential_from_env({"FAL_KEY": "id:secret"}) == FalCredential("id:secret")


def test_from_id_and_secret() -> None:
    env = {"FAL_KEY_ID": "id", "FAL_KEY_SECRET": "secret"}
    assert credential_from_env(env) == FalCredential("id:secret")


def test_none_when_unset() -> None:
    assert credential_from_env({}) is None


@pytest.mark.parametrize(
    "env",
    [
        {"FAL_KEY": ""},
        {"FAL_KEY": "id:secret\n"},
        {"FAL_KEY": " id:secret"},
        {"FAL_KEY": "id:se cret"},
        {"FAL_KEY": "id:sécret"},
        {"FAL_KEY_ID": "id"},
        {"FAL_KEY_SECRET": "secret"},
        {"FAL_KEY": "a:b", "FAL_KEY_ID": "c", "FAL_KEY_SECRET": "d"},
    ],
)
def test_rejected_without_printing_the_key(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        credential_from_env(env)
    for value in env.values():
        if len(value.strip()) > 2:
            assert value.strip() not in str(caught.value)


@pytest.mark.parametrize("value", ["abcdef", ":secret", "id:", "only-the-secret-part"])
def test_a_key_that_is_not_id_colon_secret_is_warned_about(value: str) -> None:
    problem = key_shape_problem(FalCredential(value))
    assert problem is not None and "KEY_ID:KEY_SECRET" in problem
    _, warnings = load({"FAL_KEY": value}, base=None, settings=SETTINGS, build=ProxyConfig)
    assert [w for w in warnings if w.startswith("FAL_KEY does not look like a fal key")]
    assert not any(value in warning for warning in warnings)  # never the key itself


def test_a_well_formed_key_gets_no_warning() -> None:
    assert key_shape_problem(FalCredential("id:secret")) is None
    assert key_shape_problem(None) is None
    _, warnings = load({"FAL_KEY": "id:secret"}, base=None, settings=SETTINGS, build=ProxyConfig)
    assert warnings == []
