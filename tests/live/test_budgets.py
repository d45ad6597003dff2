"""Spend budgets over real sockets, in front of the fake fal's billing.

The fake sends ``x-fal-billable-units`` on successful runs and results (units per app set
through ``/__fake__/billing``) and serves fal's pricing API, mapped as ``api.fal.ai``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.live.test_ownership import call, submit, wait_completed
from tests.support.cli import clean_env
from tests.support.cli import run as run_cli
from tests.support.hook_support import bearer, live_proxy
from tests.support.metrics import scrape, value
from tests.support.ws_helpers import REALTIME, refusal, relay_url

RUN = "https://fal.run/fal-ai/flux/dev"
ROUTE = "/api/fal/proxy"
TOKENS = ("tok-a", "tok-b")


def run(client: httpx.Client, token: str | None = "tok-a", target: str = RUN) -> httpx.Response:
    return call(client, "POST", target, token, json={"prompt": "a fox"})


def billing(fake: httpx.Client, **settings: Any) -> None:
    fake.post("/__fake__/billing", json=settings).raise_for_status()


def test_a_budget_spent_by_one_user_and_not_another(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, units={"fal-ai/flux": 2}, prices={"fal-ai/flux/dev": 0.01})
    with live_proxy(fake_url, auth_tokens=TOKENS, spend_limits="0.05/day fal-ai/flux/**") as c:
        statuses = [run(c).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 402]  # 0.02 each: 0.06 spent, one call over
        refused = run(c)
        assert refused.status_code == 402
        body = refused.json()
        assert body["rule"] == "0.05/day fal-ai/flux/** per=identity"
        assert body["spent_usd"] == pytest.approx(0.06)
        assert body["limit_usd"] == 0.05
        assert body["resets_at"].endswith("T00:00:00Z")
        assert "Spend limit reached" in body["detail"]
        assert 0 < int(refused.headers["retry-after"]) <= 86400
        assert run(c, "tok-b").status_code == 200  # per identity
        other_app = "https://fal.run/fal-ai/other/model"
        assert run(c, "tok-a", other_app).status_code == 200  # outside the rule's glob


def test_a_global_budget_counts_everyone(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/flux/dev": 0.01})
    with live_proxy(fake_url, auth_tokens=TOKENS, spend_limits="0.02/month per=global") as c:
        assert [run(c, t).status_code for t in ("tok-a", "tok-b", "tok-a")] == [200, 200, 402]
        assert run(c, "tok-b").status_code == 402


def test_a_result_read_twice_is_charged_once(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, units={"fal-ai/flux": 3}, prices={"fal-ai/flux/dev": 0.01})
    settings = {"auth_tokens": TOKENS, "spend_limits": "1/day", "metrics": True}
    with live_proxy(fake_url, **settings) as c:
        request_id = submit(c, "tok-a")
        result = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}"
        wait_completed(c, request_id, "tok-a")
        reads = [call(c, "GET", result, "tok-a") for _ in range(2)]
        assert [r.status_code for r in reads] == [200, 200]
        samples = scrape(c)
        assert value(samples, "falproxy_spend_usd_total", app="fal-ai/flux") == pytest.approx(0.03)
        assert value(samples, "falproxy_billable_units_total", app="fal-ai/flux") == 3


def test_reads_stay_allowed_once_spent(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/flux/dev": 0.5})
    with live_proxy(fake_url, auth_tokens=TOKENS, spend_limits="0.5/day") as c:
        request_id = submit(c, "tok-a")  # holds 0.5: the budget is now full
        assert run(c).status_code == 402
        status = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/status"
        assert call(c, "GET", status, "tok-a").status_code in (200, 202)
        cancel = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}/cancel"
        assert call(c, "PUT", cancel, "tok-a").status_code in (202, 400)


def test_token_mints_for_a_spent_app_are_refused(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/flux/dev": 0.5})
    with live_proxy(fake_url, auth_tokens=TOKENS, spend_limits="0.5/day fal-ai/flux/**") as c:
        assert run(c).status_code == 200
        mint = {"allowed_apps": ["flux"], "token_expiration": 60}
        refused = call(c, "POST", "https://rest.fal.ai/tokens/", "tok-a", json=mint)
        assert refused.status_code == 402
        assert call(c, "POST", "https://rest.fal.ai/tokens/", "tok-b", json=mint).status_code == 200


def test_prices_file_wins_and_the_api_is_cached(
    fake_url: str, fake: httpx.Client, tmp_path: Path
) -> None:
    billing(fake, prices={"fal-ai/flux/dev": 0.5})
    prices = tmp_path / "prices.toml"
    prices.write_text('"fal-ai/flux/**" = 0.001\n')
    settings = {"auth_tokens": TOKENS, "spend_limits": "1/day", "prices_file": str(prices)}
    with live_proxy(fake_url, **settings) as c:
        assert all(run(c).status_code == 200 for _ in range(5))  # 0.001 each; at 0.5, 402s
        assert fake.get("/__fake__/billing").json()["pricing_calls"] == 0
        other = "https://fal.run/fal-ai/other/model"
        assert [run(c, "tok-b", other).status_code for _ in range(3)] == [200, 200, 200]
        assert fake.get("/__fake__/billing").json()["pricing_calls"] == 1  # cached


def test_an_unknown_price_is_refused_unless_allowed(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/flux/dev": None})
    with live_proxy(fake_url, auth_tokens=TOKENS, spend_limits="1/day") as c:
        refused = run(c)
        assert refused.status_code == 402
        assert "unit price of fal-ai/flux/dev is unknown" in refused.json()["detail"]
    with live_proxy(
        fake_url, auth_tokens=TOKENS, spend_limits="1/day", spend_allow_unpriced=True
    ) as c:
        assert run(c).status_code == 200


def test_the_access_line_and_event_carry_units_and_cost(
    fake_url: str, fake: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    billing(fake, units={"fal-ai/flux": 4}, prices={"fal-ai/flux/dev": 0.01})
    events: list[Any] = []

    async def on_event(event: Any) -> None:
        events.append(event)

    settings = {"auth_tokens": TOKENS, "spend_limits": "1/day", "on_event": (on_event,)}
    with (
        caplog.at_level(logging.INFO, logger="falproxy.access"),
        live_proxy(fake_url, **settings) as c,
    ):
        assert run(c).status_code == 200
    ran = [e for e in events if e.app_id == "fal-ai/flux/dev"]
    assert ran[0].billable_units == 4
    assert ran[0].cost_usd == pytest.approx(0.04)
    assert any("units=4 usd=0.04" in r.getMessage() for r in caplog.records)
    assert json.dumps(ran[0].cost_usd)  # plain numbers, JSON-ready


def test_a_realtime_socket_to_a_spent_app_is_refused(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/fast-lcm-diffusion": 0.5})
    realtime = "https://fal.run/fal-ai/fast-lcm-diffusion"
    settings = {"auth_tokens": TOKENS, "spend_limits": "0.5/day fal-ai/fast-lcm-diffusion/**"}
    with live_proxy(fake_url, **settings) as c:
        assert run(c, "tok-a", realtime).status_code == 200  # 0.5: the budget is spent
        url = relay_url(str(c.base_url), REALTIME)
        status, body = refusal(url, additional_headers=bearer("tok-a"))
        assert status == 402
        assert body["rule"] == "0.5/day fal-ai/fast-lcm-diffusion/** per=identity"
        with connect(url, additional_headers=bearer("tok-b")):
            pass  # another identity's budget is untouched


def test_a_call_refused_after_admission_leaves_no_hold(fake_url: str, fake: httpx.Client) -> None:
    billing(fake, prices={"fal-ai/flux/dev": 0.01})
    settings = {"auth_tokens": TOKENS, "spend_limits": "0.01/day", "max_body_bytes": 1000}
    big = b'{"prompt": "' + b"x" * 2000 + b'"}'

    def chunked() -> Iterator[bytes]:
        yield big[:500]
        yield big[500:]

    with live_proxy(fake_url, **settings) as c:
        headers = {"x-fal-target-url": RUN, "content-type": "application/json", **bearer("tok-a")}
        assert c.post(ROUTE, headers=headers, content=big).status_code == 413  # declared
        assert c.post(ROUTE, headers=headers, content=chunked()).status_code == 413  # streamed
        assert run(c).status_code == 200  # neither left 0.01 held: the budget had room
        assert run(c).status_code == 402


def test_usage_without_redis_says_where_spend_lives() -> None:
    answer = run_cli(["usage"], clean_env(FAL_KEY="a:b"))
    assert answer.returncode == 2
    assert answer.stderr.strip() == (
        "falproxy: error: falproxy usage reads FALPROXY_REDIS_URL: without Redis, spend is "
        "counted in the serving process's memory and only its /metrics show it"
    )
