"""The identity, limit, CORS and hook settings: from the environment, validated, masked."""

from __future__ import annotations

import json

import pytest

import falproxy
from falproxy import ConfigError, FalCredential, FalProxy, ProxyConfig, RateLimit
from tests.support.cli import clean_env, run

SECRET = "jwt-shared-secret-with-32-or-more-chars"
ENV = {
    "FAL_KEY": "abcdefghijklmnop:supersecretvalue",
    "FALPROXY_AUTH_TOKENS": "tok-one, tok-two",
    "FALPROXY_JWT_SECRET": SECRET,
    "FALPROXY_JWT_AUDIENCE": "my-app",
    "FALPROXY_JWT_ISSUER": "https://idp.example",
    "FALPROXY_ALLOW_ANONYMOUS": "yes",
    "FALPROXY_RATE_LIMIT": "20/minute; 2/minute fal-ai/flux-pro/** cost=2 per=global",
    "FALPROXY_REDIS_URL": "redis://:redispassword@127.0.0.1:6379/0",
    "FALPROXY_RATE_LIMIT_FAIL_OPEN": "false",
    "FALPROXY_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
    "FALPROXY_CORS_ORIGINS": "https://app.example, http://127.0.0.1:5173",
    "FALPROXY_ACCESS_LOG_FORMAT": "json",
    "FALPROXY_METRICS": "off",
}


def test_from_env() -> None:
    config = ProxyConfig.from_env(ENV)
    assert config.auth_tokens == ("tok-one", "tok-two")
    assert config.jwt_secret == SECRET and config.jwt_audience == "my-app"
    assert config.jwt_issuer == "https://idp.example"
    assert config.allow_anonymous is True
    assert config.rate_limits == (
        RateLimit("20/minute"),
        RateLimit("2/minute", "fal-ai/flux-pro/**", "global", 2),
    )
    assert config.redis_url == "redis://:redispassword@127.0.0.1:6379/0"
    assert config.rate_limit_fail_open is False
    assert config.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert config.cors_origins == ("https://app.example", "http://127.0.0.1:5173")
    assert config.access_log_format == "json" and config.metrics is False


def test_secrets_are_masked() -> None:
    config = ProxyConfig.from_env(ENV)
    shown = json.dumps(config.describe()) + repr(config)
    for secret in ("supersecretvalue", "tok-one", "tok-two", SECRET, "redispassword"):
        assert secret not in shown
    assert config.describe()["redis_url"] == "redis://:****@127.0.0.1:6379/0"
    assert config.describe()["auth_tokens"] == "2 token(s)"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FALPROXY_JWT_SECRET": "short"}, "at least 32"),
        ({"FALPROXY_JWT_SECRET": SECRET, "FALPROXY_JWKS_URL": "https://idp/jwks"}, "only one"),
        ({"FALPROXY_JWKS_URL": "http://idp.example/jwks"}, "https"),
        ({"FALPROXY_REDIS_URL": "http://127.0.0.1:6379"}, "redis://"),
        ({"FALPROXY_TRUSTED_PROXIES": "10.0.0.0/8, proxy.local"}, "proxy.local"),
        ({"FALPROXY_CORS_ORIGINS": "https://app.example/path"}, "scheme://host"),
        ({"FALPROXY_ACCESS_LOG_FORMAT": "xml"}, "must be one of text, json"),
        ({"FALPROXY_ALLOW_ANONYMOUS": "maybe"}, "true or false"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        ProxyConfig.from_env({"FAL_KEY": "a:b", **env})
    assert SECRET not in str(caught.value)
    assert list(env)[-1] in str(caught.value)  # names the variable the user set


def test_hooks_must_be_callable() -> None:
    with pytest.raises(ConfigError, match="before_request"):
        ProxyConfig(before_request=("not callable",))  # type: ignore[arg-type]


def test_warning_when_a_real_key_has_no_authentication() -> None:
    open_proxy = FalProxy(ProxyConfig(credential=FalCredential("id:secret")))
    warning = next(w for w in open_proxy.startup_warnings() if "no authentication" in w)
    assert "anyone who can reach this port" in warning and "FALPROXY_AUTH_TOKENS" in warning
    for settings in ({"auth_tokens": ("t",)}, {"allow_anonymous": True}):
        config = ProxyConfig(credential=FalCredential("id:secret"), **settings)  # type: ignore[arg-type]
        assert not any("no authentication" in w for w in FalProxy(config).startup_warnings())


def test_check_command_shows_the_warning() -> None:
    completed = run(["check"], clean_env(FAL_KEY="abcdefghijklmnop:supersecretvalue"))
    report = json.loads(completed.stdout)
    assert any("no authentication" in warning for warning in report["warnings"])


def test_public_names() -> None:
    hook_names = {"Identity", "RequestContext", "Reply", "RateLimit", "ProxyEvent"}
    assert hook_names <= set(falproxy.__all__)
    assert all(hasattr(falproxy, name) for name in falproxy.__all__)
