"""Spend rules, windows, price tables and their settings: pure parts of issue 20."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from falproxy.admission.watch import billable_units, request_id_in
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import ConfigError
from falproxy.core.prices import parse_prices
from falproxy.core.spend_rules import SpendLimit, parse_spend_limits, to_micro, window


def test_rules_in_their_text_form() -> None:
    rules = parse_spend_limits("0.50/day fal-ai/flux/** per=identity; 200/month per=global")
    assert rules == (
        SpendLimit(0.5, "day", "fal-ai/flux/**", "identity"),
        SpendLimit(200.0, "month", "**", "global"),
    )
    assert str(rules[0]) == "0.5/day fal-ai/flux/** per=identity"
    assert rules[0].limit_micro == 500_000


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("0.5/fortnight", "the period must be one of hour, day, week, month"),
        ("-1/day", "positive number of USD"),
        ("ten/day", "'ten' is not an amount of USD"),
        ("5 fal-ai/**", "'5' is not AMOUNT/PERIOD"),
        ("1/day a/** b/**", "one endpoint glob per rule"),
        ("1/day per=everyone", "per must be one of identity, address, global"),
        ("1/day cost=2", "unknown option 'cost'"),
        ("1/day, 2/month", "rules are separated by ';'"),
    ],
)
def test_a_bad_rule_is_one_line_naming_the_variable(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env({"FALPROXY_SPEND_LIMIT": text})
    message = str(caught.value)
    assert message.startswith("FALPROXY_SPEND_LIMIT has a bad spend limit")
    assert problem in message and "\n" not in message


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("hour", "2026-12-06T21:00", "2026-12-06T22:00"),
        ("day", "2026-12-06T00:00", "2026-12-07T00:00"),
        ("week", "2026-11-30T00:00", "2026-12-07T00:00"),  # weeks start on Monday
        ("month", "2026-12-01T00:00", "2027-01-01T00:00"),
    ],
)
def test_windows_are_fixed_and_utc(period: str, start: str, end: str) -> None:
    now = datetime(2026, 12, 6, 21, 30, tzinfo=UTC)
    begins, ends = window(period, now)  # type: ignore[arg-type]
    assert (f"{begins:%Y-%m-%dT%H:%M}", f"{ends:%Y-%m-%dT%H:%M}") == (start, end)


def test_money_is_whole_micro_dollars_rounded_up() -> None:
    assert to_micro(0.025) == 25_000
    assert to_micro(3 * 0.1) == 300_000  # no float drift
    assert to_micro(0.0000001) == 1  # a fraction of a micro-dollar still counts


def test_price_files_json_and_toml_first_glob_wins() -> None:
    table = parse_prices('{"fal-ai/flux/dev": 0.025, "fal-ai/**": 0.04}', ".json")
    assert table.price_for("fal-ai/flux/dev") == 0.025
    assert table.price_for("fal-ai/kling/v2") == 0.04
    assert table.price_for("other/app") is None
    toml = parse_prices('"fal-ai/flux/**" = 0.04\n', ".toml")
    assert toml.price_for("fal-ai/flux/schnell") == 0.04


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("p.json", "{", "is not valid JSON"),
        ("p.toml", "= 1", "is not valid TOML"),
        ("p.yaml", "{}", "must end in .json or .toml"),
        ("p.json", '["a"]', "must map endpoint globs"),
        ("p.json", '{"a/**": "cheap"}', "price that is not a number"),
        ("p.json", '{"a/**": -1}', "not a non-negative number"),
        ("p.json", '{"[a]": 1}', "invalid glob"),
    ],
)
def test_a_bad_prices_file_stops_start_up(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="FALPROXY_PRICES") as caught:
        ProxyConfig.from_env({"FALPROXY_PRICES": str(path)})
    assert problem in str(caught.value)


def test_a_missing_prices_file_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names no readable file"):
        ProxyConfig.from_env({"FALPROXY_PRICES": str(tmp_path / "nope.json")})


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"FALPROXY_REQUEST_OWNERSHIP": "maybe"}, "must be one of auto, on, off"),
        ({"FALPROXY_REQUEST_TTL": "5"}, "must be at least 60 seconds"),
    ],
)
def test_ownership_settings(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        ProxyConfig.from_env(env)


def test_units_and_submit_ids_from_fal_answers() -> None:
    assert billable_units([(b"X-Fal-Billable-Units", b"2.5")]) == 2.5
    assert billable_units([(b"x-fal-billable-units", b"lots")]) is None
    assert billable_units([(b"x-fal-billable-units", b"-1")]) is None
    assert billable_units([(b"x-fal-billable-units", b"nan")]) is None
    assert billable_units([]) is None
    assert request_id_in(b'{"request_id": "abc", "status": "IN_QUEUE"}') == "abc"
    assert request_id_in(b'{"request_id": 5}') is None
    assert request_id_in(b"not json") is None


def test_memory_budgets_and_owners_are_refused_with_several_workers() -> None:
    from falproxy.ops.workers import check_worker_limits

    for settings in ({"spend_limits": "1/day"}, {"request_ownership": "on"}):
        with pytest.raises(ConfigError) as caught:
            check_worker_limits(ProxyConfig(**settings), 2)  # type: ignore[arg-type]
        assert "set FALPROXY_REDIS_URL to share them" in str(caught.value)
    shared = ProxyConfig(spend_limits="1/day", redis_url="redis://127.0.0.1:1/0")
    check_worker_limits(shared, 2)  # in Redis: one budget for every worker


def test_api_fal_ai_is_mapped_like_a_fal_host_but_never_a_target() -> None:
    from falproxy.core.errors import InvalidTarget
    from falproxy.core.targets import parse_target

    config = ProxyConfig(upstreams={"api.fal.ai": "http://127.0.0.1:9000/api"})
    assert config.upstreams["api.fal.ai"] == "http://127.0.0.1:9000/api"
    with pytest.raises(InvalidTarget):
        parse_target("https://api.fal.ai/v1/models/pricing?endpoint_id=fal-ai/flux/dev")
