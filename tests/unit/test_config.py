"""ProxyConfig: built in code or from the environment, validated at construction."""

from __future__ import annotations

import dataclasses
import logging
import re
import ssl
from pathlib import Path
from typing import Any

import pytest

import falproxy
from falproxy import DEFAULT_ALLOWED_URLS, ConfigError, FalCredential, ProxyConfig, RateLimit
from falproxy.config import SETTINGS, groups, loader, table
from falproxy.config.file import config_from_sources
from falproxy.core.redact import mask_url
from falproxy.core.upstreams import UpstreamMap
from tests.support.tls import make_pki


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


# --- The settings table ---------------------------------------------------------------


def test_the_table_has_one_row_per_field_with_its_variable_default_and_doc() -> None:
    fields = [item.name for item in dataclasses.fields(ProxyConfig)]
    assert [row.name for row in SETTINGS] == fields
    variables = [row.env for row in SETTINGS if row.env]
    assert len(variables) == len(set(variables))
    defaults = ProxyConfig()
    for row in SETTINGS:
        assert row.doc and "\n" not in row.doc, row.name
        assert row.default == getattr(defaults, row.name), row.name
        if row.env is not None:
            assert row.env == "FAL_KEY" or row.env.startswith("FALPROXY_"), row.name
            assert (row.file_key == row.name and row.parse is not None) or row.name == "credential"
    by_name = {row.name: row for row in SETTINGS}
    assert by_name["rate_limits"].env == "FALPROXY_RATE_LIMIT"
    assert by_name["log_format"].deprecated_env == ("FALPROXY_ACCESS_LOG_FORMAT",)
    assert by_name["authenticate"].env is None and by_name["authenticate"].file_key is None
    secrets = {row.name for row in SETTINGS if row.secret}
    assert secrets == {"credential", "auth_tokens", "jwt_secret", "redis_url", "metrics_token"}


def test_every_new_setting_keeps_its_variable() -> None:
    variables = {row.name: row.env for row in SETTINGS}
    for name in (
        "body_deadline", "header_timeout", "health_path", "ready_path", "metrics_path",
        "metrics_token", "jwks_cache_seconds", "token_minting", "ipv6_prefix",
        "ws_message_rate", "ws_max_sockets", "allowed_hosts", "per_worker_limits",
        "log_format", "fake_url",
    ):  # fmt: skip
        assert variables[name] == f"FALPROXY_{name.upper()}"


# --- Built in code: normalised before freezing, never changed after --------------------


def test_lists_are_accepted_in_code_and_stored_as_tuples() -> None:
    config = ProxyConfig(
        cors_origins=["https://app.example"],  # type: ignore[arg-type]
        allowed_endpoints=["fal-ai/flux/**"],  # type: ignore[arg-type]
        rate_limits=["20/minute", RateLimit("5/minute", "fal-ai/**")],  # type: ignore[list-item]
        credential="id:secret",  # type: ignore[arg-type]
    )
    assert config.cors_origins == ("https://app.example",)
    assert config.allowed_endpoints == ("fal-ai/flux/**",)
    assert config.rate_limits == (RateLimit("20/minute"), RateLimit("5/minute", "fal-ai/**"))
    assert config.credential == FalCredential("id:secret")
    assert config == ProxyConfig(
        cors_origins=("https://app.example",),
        allowed_endpoints=("fal-ai/flux/**",),
        rate_limits=(RateLimit("20/minute"), RateLimit("5/minute", "fal-ai/**")),
        credential=FalCredential("id:secret"),
    )
    assert dataclasses.replace(config, route="/fal").cors_origins == ("https://app.example",)


def test_nothing_changes_after_construction() -> None:
    source = {"fal.run": "http://127.0.0.1:9000/run"}
    config = ProxyConfig(upstreams=source)
    source["queue.fal.run"] = "http://127.0.0.1:1/queue"
    assert dict(config.upstreams) == {"fal.run": "http://127.0.0.1:9000/run"}
    with pytest.raises(TypeError):
        config.upstreams["fal.run"] = "http://elsewhere"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.route = "/x"  # type: ignore[misc]
    package = Path(falproxy.__file__).parent
    mutating = [p for p in package.rglob("*.py") if "object.__setattr__" in p.read_text()]
    assert mutating == []


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"body_timeout": 0}, "body_timeout must be a positive number"),
        ({"ws_max_queue": 1.5}, "ws_max_queue must be a positive integer"),
        ({"allow_anonymous": "false"}, "allow_anonymous must be True or False"),
        ({"cors_origins": "https://app.example"}, "cors_origins must be a list or tuple"),
        ({"ws_message_rate": "often"}, "ws_message_rate must be one positive rate"),
        ({"log_format": "xml"}, "log_format must be one of text, json"),
        ({"ipv6_prefix": 129}, "ipv6_prefix must be a prefix length"),
        ({"health_path": "healthz"}, "health_path must be an absolute path"),
        ({"fake_url": "ftp://x"}, "fake_url must be an http"),
    ],
)
def test_settings_in_code_fail_naming_the_keyword(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ProxyConfig(**settings)


def test_groups_are_small_values_of_the_same_settings() -> None:
    config = ProxyConfig(body_timeout=2.5, ws_max_sockets=3, cors_origins=("*",))
    assert config.timeouts.body_timeout == 2.5
    assert config.websocket.ws_max_sockets == 3
    assert config.cors.cors_origins == ("*",)
    assert config.rate_limiting.ipv6_prefix == 64
    assert config.auth.jwt_secret is None
    assert config.operations.metrics_path == "/metrics"
    assert config.routing.route == "/api/fal/proxy"
    assert config.allow_lists.token_minting is True
    assert config.hooks.on_event == ()


def test_group_membership_is_the_tables() -> None:
    config = ProxyConfig()
    for group in groups.GROUPS:
        members = [row.name for row in SETTINGS if row.group == group.name]
        assert list(getattr(config, group.name)) == members, group.name
    assert {row.group for row in SETTINGS} == groups.GROUP_NAMES
    with pytest.raises(AttributeError, match="no setting 'route'"):
        _ = config.timeouts.route


def test_a_setting_names_a_known_group() -> None:
    with pytest.raises(ValueError, match="unknown settings group 'timing'"):
        table.setting(1.0, table.SECONDS, "A wait.", env="FALPROXY_X", group="timing")


def test_every_setting_has_a_short_doc_and_a_reference_meaning() -> None:
    for row in SETTINGS:
        assert row.meaning and "\n" not in row.meaning, row.name
    by_name = {row.name: row for row in SETTINGS}
    assert by_name["connect_timeout"].meaning == by_name["connect_timeout"].doc
    assert "504" in by_name["upstream_timeout"].meaning


def test_groups_are_built_and_checked_once_per_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = make_pki(tmp_path).ca
    loads: list[object] = []
    create = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        loads.append(kwargs.get("cafile"))
        return create(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    config = ProxyConfig(upstream_ca_file=str(bundle))
    assert loads == [str(bundle)]
    assert config.timeouts is config.timeouts
    assert config.timeouts.upstream_ca_file == str(bundle)
    assert loads == [str(bundle)]  # not read again on access
    replaced = dataclasses.replace(config, upstream_ca_file=None)
    assert replaced.timeouts.upstream_ca_file is None


def test_load_reads_the_file_then_the_environment_as_falproxy_serve_does(
    tmp_path: Path,
) -> None:
    path = tmp_path / "falproxy.toml"
    path.write_text('route = "/from-file"\nbody_timeout = 7\n')
    env = {"FALPROXY_CONFIG": str(path), "FALPROXY_BODY_TIMEOUT": "9", "FAL_KEY": "id:secret"}
    config = ProxyConfig.load(env)
    assert config == config_from_sources(env)
    assert (config.route, config.body_timeout) == ("/from-file", 9.0)


# --- From the environment: errors name the variable ----------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FALPROXY_BODY_TIMEOUT": "abc"},
            "FALPROXY_BODY_TIMEOUT must be a number of seconds, got 'abc'",
        ),
        ({"FALPROXY_BODY_TIMEOUT": "-1"}, "FALPROXY_BODY_TIMEOUT must be a positive number"),
        ({"FALPROXY_WS_MAX_SOCKETS": "0"}, "FALPROXY_WS_MAX_SOCKETS must be a positive integer"),
        ({"FALPROXY_TOKEN_MINTING": "perhaps"}, "FALPROXY_TOKEN_MINTING must be true or false"),
        ({"FALPROXY_IPV6_PREFIX": "200"}, "FALPROXY_IPV6_PREFIX must be a prefix length"),
        ({"FALPROXY_METRICS_PATH": "metrics"}, "FALPROXY_METRICS_PATH must be an absolute path"),
        ({"FALPROXY_LOG_FORMAT": "xml"}, "FALPROXY_LOG_FORMAT must be one of text, json"),
        (
            {"FALPROXY_UPSTREAMS": "fal.run"},
            "FALPROXY_UPSTREAMS must be HOST=BASE_URL pairs, got 'fal.run'",
        ),
        (
            {"FALPROXY_ALLOWED_URLS": "fal.run/{a,b}"},
            "FALPROXY_ALLOWED_URLS entry 'fal.run/{a' is an invalid",
        ),
        (
            {"FALPROXY_ALLOWED_ENDPOINTS": "a/{b"},
            "FALPROXY_ALLOWED_ENDPOINTS entry 'a/{b' is an invalid",
        ),
    ],
)
def test_environment_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        ProxyConfig.from_env({"FAL_KEY": "id:secret", **env})


@pytest.mark.parametrize(
    "env",
    [
        {"FALPROXY_JWT_SECRET": "hunter2-too-short"},
        {"FALPROXY_REDIS_URL": "http://:hunter2@127.0.0.1:6379"},
        {"FAL_KEY": "id:hunter2 with spaces"},
    ],
)
def test_secrets_are_never_quoted_in_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env(env)
    assert "hunter2" not in str(caught.value)
    assert next(iter(env)) in str(caught.value)


def test_unknown_variables_fail_with_the_closest_name() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape("unknown variable FALPROXY_RATELIMIT: did you mean FALPROXY_RATE_LIMIT?"),
    ):
        ProxyConfig.from_env({"FALPROXY_RATELIMIT": "60/minute"})
    with pytest.raises(
        ConfigError,
        match=re.escape("unknown variable FALPROXY_AUTH_TOKEN: did you mean FALPROXY_AUTH_TOKENS?"),
    ):
        ProxyConfig.from_env({"FALPROXY_AUTH_TOKEN": "t"})
    with pytest.raises(ConfigError, match="unknown variable FALPROXY_ZZZ "):
        ProxyConfig.from_env({"FALPROXY_ZZZ": "1"})
    internal = {"FALPROXY_CONFIG": "", "FALPROXY_FAKE_BASE": "x", "FALPROXY_FAKE_SPEED": "1"}
    assert ProxyConfig.from_env(internal) == ProxyConfig()


def test_rate_rules_separated_by_commas_get_the_hint() -> None:
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env({"FALPROXY_RATE_LIMIT": "60/minute, 5/minute fal-ai/flux/**"})
    message = str(caught.value)
    assert message.startswith("FALPROXY_RATE_LIMIT has a bad rate limit '60/minute, 5/minute")
    assert "expected LIMIT [ENDPOINT_GLOB] [per=identity|address|global] [cost=N]" in message
    assert message.endswith("rules are separated by ';', not ','")
    with pytest.raises(
        ConfigError, match=r"FALPROXY_RATE_LIMIT has a bad .*expected LIMIT"
    ) as caught:
        ProxyConfig.from_env({"FALPROXY_RATE_LIMIT": "5/fortnight"})
    assert "separated by" not in str(caught.value)


def test_access_log_format_is_a_deprecated_alias_warned_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "_logged", set())  # as in a new process: nothing logged yet
    env = {"FALPROXY_ACCESS_LOG_FORMAT": "json"}
    with caplog.at_level(logging.WARNING, logger="falproxy.config"):
        first, second = ProxyConfig.from_env(env), ProxyConfig.from_env(env)
    assert first.log_format == first.access_log_format == "json" == second.log_format
    deprecations = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert deprecations == [
        "FALPROXY_ACCESS_LOG_FORMAT is deprecated: use FALPROXY_LOG_FORMAT "
        "(the format of every log line)"
    ]
    both = ProxyConfig.from_env({"FALPROXY_LOG_FORMAT": "json"})
    assert both.log_format == both.access_log_format == "json"


# --- Credentials in URLs --------------------------------------------------------------


def test_credentials_in_upstream_urls_are_masked_everywhere() -> None:
    config = ProxyConfig.from_env(
        {
            "FAL_KEY": "id:secret",
            "FALPROXY_UPSTREAMS": "fal.run=http://user:pa55word@127.0.0.1:9/run",
        }
    )
    assert config.upstreams["fal.run"] == "http://user:pa55word@127.0.0.1:9/run"  # still used
    assert config.describe()["upstreams"] == {"fal.run": "http://user:****@127.0.0.1:9/run"}
    assert "pa55word" not in repr(config)
    assert UpstreamMap(config.upstreams).describe() == [
        "fal.run -> http://user:****@127.0.0.1:9/run"
    ]
    for bad in ("fal.run=ftp://user:pa55word@127.0.0.1/x", "fal.run=user:pa55word@127.0.0.1"):
        with pytest.raises(ConfigError) as caught:
            ProxyConfig.from_env({"FALPROXY_UPSTREAMS": bad})
        assert "pa55word" not in str(caught.value)
        assert "FALPROXY_UPSTREAMS" in str(caught.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://user:pw@host:8/x", "http://user:****@host:8/x"),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:****@127.0.0.1:6379/0"),
        ("https://tok@host/x", "https://****@host/x"),
        ("http://[::1]:9/x", "http://[::1]:9/x"),
        ("http://u:pw@[::1]:9/x", "http://u:****@[::1]:9/x"),
        ("http://u:pw@host:bad/x", "****@host:bad/x"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_ws_limits_from_env() -> None:
    env = {"FALPROXY_WS_MESSAGE_RATE": "10/second", "FALPROXY_WS_MAX_SOCKETS": "4"}
    config = ProxyConfig.from_env(env)
    assert (config.ws_message_rate, config.ws_max_sockets) == ("10/second", 4)
    with pytest.raises(ConfigError, match="ws_message_rate"):
        ProxyConfig(ws_message_rate="ten per fortnight")
