"""The TOML configuration file: every ProxyConfig field, type checks, precedence, masking."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from falproxy import ConfigError, FalCredential, ProxyConfig
from falproxy.config import SETTINGS
from falproxy.config.file import config_from_sources, load_config_file, settings_from_mapping
from tests.support.cli import RUN as RUN_FLUX
from tests.support.cli import clean_env, run
from tests.support.procs import falproxy_serve, free_port, proxy_env

FULL_FILE = """
fal_key = "file-key-id:file-key-secret"
route = "/fal"
allowed_urls = ["fal.run/**", "queue.fal.run/**"]
allowed_endpoints = ["fal-ai/flux/**"]
max_body_bytes = 1024
connect_timeout = 2
upstream_timeout = 30.5
stream_idle_timeout = 60.0
max_token_expiration = 120
shutdown_grace = 10.0

[upstreams]
"fal.run" = "http://127.0.0.1:9000/run"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "falproxy.toml"
    path.write_text(text)
    return path


def test_every_setting_can_come_from_the_file(tmp_path: Path) -> None:
    config = ProxyConfig.from_env({}, base=load_config_file(write(tmp_path, FULL_FILE)))
    assert config.credential == FalCredential("file-key-id:file-key-secret")
    assert config.route == "/fal"
    assert config.allowed_urls == ("fal.run/**", "queue.fal.run/**")
    assert config.allowed_endpoints == ("fal-ai/flux/**",)
    assert config.upstreams == {"fal.run": "http://127.0.0.1:9000/run"}
    assert config.connect_timeout == 2.0 and isinstance(config.connect_timeout, float)
    assert (config.upstream_timeout, config.stream_idle_timeout) == (30.5, 60.0)
    assert (config.max_body_bytes, config.max_token_expiration) == (1024, 120)
    assert config.shutdown_grace == 10.0


def test_the_file_covers_every_field_of_proxy_config() -> None:
    """Derived from the settings table: a field added later is settable with no loader change."""
    defaults = ProxyConfig(credential=FalCredential("id:secret"))
    assert [row.name for row in SETTINGS] == [f.name for f in dataclasses.fields(ProxyConfig)]
    document: dict[str, object] = {}
    for row in SETTINGS:
        value = getattr(defaults, row.name)
        if value is None or row.file_key is None:
            continue  # TOML has no null; hooks are code only
        if isinstance(value, FalCredential):
            value = value.reveal()
        elif isinstance(value, tuple):
            value = [str(item) for item in value]
        elif isinstance(value, Mapping):
            value = dict(value)
        document[row.file_key] = value
    settings = settings_from_mapping(document, source="test")
    assert set(settings) == {
        row.name for row in SETTINGS if row.file_key and getattr(defaults, row.name) is not None
    }
    assert ProxyConfig(**settings) == defaults  # type: ignore[arg-type]


def test_strings_use_the_environment_syntax(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'allowed_endpoints = "fal-ai/flux/**, fal-ai/fast-sdxl"\n'
        'upstreams = "fal.run=http://127.0.0.1:9000/run"\n',
    )
    settings = load_config_file(path)
    assert settings["allowed_endpoints"] == ("fal-ai/flux/**", "fal-ai/fast-sdxl")
    assert settings["upstreams"] == {"fal.run": "http://127.0.0.1:9000/run"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("allowed_endpoint = ['fal-ai/flux/**']", "unknown setting 'allowed_endpoint'"),
        ("max_body_bytes = 1.5", "max_body_bytes must be an integer"),
        ("max_body_bytes = true", "max_body_bytes must be an integer"),
        ("upstream_timeout = 'soon'", "must be a number of seconds"),
        ("allowed_urls = 3", "allowed_urls must be a list"),
        ("allowed_urls = [1]", "allowed_urls must be a list of strings"),
        ("upstreams = ['fal.run']", "upstreams must be a table"),
        ("route = 5", "route must be a string"),
        ("max_body_bytes = ", "not valid TOML"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config_file(write(tmp_path, text))


def test_values_are_validated_like_any_config(tmp_path: Path) -> None:
    path = write(tmp_path, 'upstreams = { "example.com" = "http://127.0.0.1:1" }\n')
    with pytest.raises(ConfigError, match=r"unknown host 'example\.com'"):
        ProxyConfig.from_env({}, base=load_config_file(path))


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config_file(tmp_path / "absent.toml")


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)
    env = {
        "FALPROXY_CONFIG": str(path),
        "FAL_KEY": "env-key-id:env-key-secret",
        "FALPROXY_ROUTE": "/from-env",
    }
    config = config_from_sources(env)
    assert config.credential == FalCredential("env-key-id:env-key-secret")
    assert config.route == "/from-env"
    assert config.max_body_bytes == 1024  # not in the environment: the file's value


def test_check_prints_file_settings_with_the_key_masked(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_FILE)
    result = run(["check", "--config", str(path)], clean_env(FALPROXY_MAX_BODY_BYTES="2048"))
    assert result.returncode == 0, result.stderr
    assert "file-key-secret" not in result.stdout + result.stderr
    described = json.loads(result.stdout)["config"]
    assert described["credential"] == "****"
    assert described["route"] == "/fal"
    assert described["max_body_bytes"] == 2048  # environment over file


def test_check_rejects_unknown_keys_with_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, 'fal_key = "id:secret"\nallowed_endpoint = ["x"]\n')
    result = run(["check", "--config", str(path)], clean_env())
    assert result.returncode == 2
    assert "unknown setting 'allowed_endpoint'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_reads_the_file_in_its_workers_with_flags_over_env_over_file(
    tmp_path: Path, fake_url: str
) -> None:
    path = write(tmp_path, 'route = "/from-file"\nallowed_endpoints = ["fake/**"]\n')
    run_echo = {"x-fal-target-url": "https://fal.run/fake/echo"}
    port = free_port()
    with falproxy_serve(proxy_env(fake_url), port, "--config", str(path)):
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/from-file", headers=run_echo, json={}).status_code == 200
        refused = httpx.post(f"{base}/from-file", headers=RUN_FLUX, json={})
        assert refused.status_code == 403  # the file's endpoint allow-list is in force
    env = proxy_env(fake_url, FALPROXY_ROUTE="/from-env")
    port = free_port()
    with falproxy_serve(env, port, "--config", str(path)):
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/from-env", headers=run_echo, json={}).status_code == 200
        assert httpx.post(f"{base}/from-file", headers=run_echo, json={}).status_code == 404
    port = free_port()
    with falproxy_serve(env, port, "--config", str(path), "--route", "/from-flag"):
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{base}/from-flag", headers=run_echo, json={}).status_code == 200
        assert httpx.post(f"{base}/from-env", headers=run_echo, json={}).status_code == 404


def test_file_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "body_timeout = -1\n")
    with pytest.raises(ConfigError) as caught:
        config_from_sources({"FALPROXY_CONFIG": str(path)})
    assert str(caught.value) == f"{path}: body_timeout must be a positive number"
    path = write(tmp_path, "rate_limit = '60/minute'\n")
    with pytest.raises(
        ConfigError, match=r"unknown setting 'rate_limit': did you mean rate_limits\?"
    ):
        load_config_file(path)
    path = write(tmp_path, 'rate_limits = ["60/minute", "5/minute fal-ai/** cost=2"]\n')
    assert [str(rule) for rule in load_config_file(path)["rate_limits"]] == [  # type: ignore[attr-defined]
        "60/minute ** per=identity cost=1",
        "5/minute fal-ai/** per=identity cost=2",
    ]


def test_the_environment_is_named_when_it_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "body_timeout = 5\n")
    env = {"FALPROXY_CONFIG": str(path), "FALPROXY_BODY_TIMEOUT": "0"}
    with pytest.raises(ConfigError, match=r"^FALPROXY_BODY_TIMEOUT must be a positive number$"):
        config_from_sources(env)
