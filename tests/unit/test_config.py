"""ProxyConfig: built in code or from the environment, validated at construction."""

from __future__ import annotations

import pytest

from falproxy import DEFAULT_ALLOWED_URLS, ConfigError, ProxyConfig


def test_defaults() -> None:
    config = ProxyConfig()
    assert config.route == "/api/fal/proxy"
    assert config.allowed_urls == DEFAULT_ALLOWED_URLS
    assert config.allowed_endpoints == ()


def test_from_env() -> None:
    config = ProxyConfig.from_env(
        {
            "FAL_KEY": "id:secret",
            "FALPROXY_ALLOWED_ENDPOINTS": "fal-ai/flux/**, fal-ai/fast-sdxl",
            "FALPROXY_UPSTREAMS": "fal.run=http://127.0.0.1:9000/run,"
            "queue.fal.run=http://127.0.0.1:9000/queue",
            "FALPROXY_MAX_BODY_BYTES": "1024",
            "FALPROXY_UPSTREAM_TIMEOUT": "2.5",
            "FALPROXY_STREAM_IDLE_TIMEOUT": "30",
            "FALPROXY_ROUTE": "/fal",
        }
    )
    assert config.allowed_endpoints == ("fal-ai/flux/**", "fal-ai/fast-sdxl")
    assert config.upstreams == {
        "fal.run": "http://127.0.0.1:9000/run",
        "queue.fal.run": "http://127.0.0.1:9000/queue",
    }
    assert config.max_body_bytes == 1024
    assert config.upstream_timeout == 2.5
    assert config.stream_idle_timeout == 30
    assert config.route == "/fal"


def test_describe_masks_the_key() -> None:
    config = ProxyConfig.from_env({"FAL_KEY": "abcdefghijklmnop:supersecretvalue"})
    assert "supersecretvalue" not in str(config.describe())
    assert "supersecretvalue" not in repr(config)


@pytest.mark.parametrize(
    "env",
    [
        {"FALPROXY_UPSTREAMS": "evil.example=http://127.0.0.1:1"},
        {"FALPROXY_UPSTREAMS": "fal.run"},
        {"FALPROXY_UPSTREAMS": "fal.run=ftp://127.0.0.1/x"},
        {"FALPROXY_UPSTREAMS": "fal.run=http://127.0.0.1/x?y=1"},
        {"FALPROXY_MAX_BODY_BYTES": "ten"},
        {"FALPROXY_MAX_BODY_BYTES": "0"},
        {"FALPROXY_UPSTREAM_TIMEOUT": "-1"},
        {"FALPROXY_ALLOWED_URLS": "fal.run/{a,b}"},
        {"FALPROXY_ROUTE": "no-slash"},
        {"FALPROXY_WS_MESSAGE_RATE": "lots"},
        {"FALPROXY_WS_MESSAGE_RATE": "10/second;100/minute"},
        {"FALPROXY_WS_MESSAGE_RATE": "0/second"},
        {"FALPROXY_WS_MAX_SOCKETS": "0"},
    ],
)
def test_bad_settings_fail_at_start_up(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ProxyConfig.from_env(env)


def test_ws_limits_from_env() -> None:
    env = {"FALPROXY_WS_MESSAGE_RATE": "10/second", "FALPROXY_WS_MAX_SOCKETS": "4"}
    config = ProxyConfig.from_env(env)
    assert (config.ws_message_rate, config.ws_max_sockets) == ("10/second", 4)
    with pytest.raises(ConfigError, match="ws_message_rate"):
        ProxyConfig(ws_message_rate="ten per fortnight")
