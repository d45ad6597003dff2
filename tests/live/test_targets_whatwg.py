"""Targets against the WHATWG URL rules browsers use, and refusals through the live proxy.

``test_targets.py`` cross-checks accepted targets with urllib and httpx. Browsers and Node
(where fal's clients run) parse with the WHATWG URL Standard, which repairs far more: it
drops tabs and newlines anywhere, reads ``\\`` as ``/``, maps full-width dots and soft
hyphens away (IDNA), decodes percent-escapes in hosts, and reads ``0x7f.1`` as IPv4. The
ada-url package is the WHATWG parser Node itself uses; every target we accept must mean the
same host, scheme and port to it. Then the corpus and generated URLs go through the running
proxy, which must answer 400/412 with a JSON detail and forward nothing.
"""

from __future__ import annotations

from typing import Any

import ada_url
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from falproxy.core.errors import InvalidTarget, ProxyError
from falproxy.core.policy import DEFAULT_ALLOWED_URLS, Policy
from falproxy.core.targets import ALLOWED_HOSTS, Target, parse_target
from tests.support.target_corpus import ACCEPT, REJECT, generated_urls, mutated_urls, raw_of

ROUTE = "/api/fal/proxy"
DEFAULT_POLICY = Policy(DEFAULT_ALLOWED_URLS, (), 300)


def assert_whatwg_agrees(raw: str, target: Target) -> None:
    """The WHATWG parser reads ``raw`` and the rebuilt URL as the same origin as ``target``."""
    for url in (raw, target.url):
        parsed = ada_url.URL(url)
        assert parsed.protocol == f"{target.scheme}:"
        assert parsed.hostname.removesuffix(".") == target.host
        assert parsed.port == ""  # 443 is the default of both https and wss
        assert parsed.username == "" and parsed.password == ""
    rebuilt = ada_url.URL(target.url)
    assert rebuilt.pathname == target.path, "WHATWG would normalise the path differently"


def whatwg_host(raw: str) -> str | None:
    """The host a browser would connect to for ``raw``, or None when it refuses the URL."""
    try:
        return ada_url.URL(raw).hostname.removesuffix(".")
    except ValueError:
        return None


@pytest.mark.parametrize("case", ACCEPT, ids=[c["label"] for c in ACCEPT])
def test_accepted_targets_mean_the_same_host_to_a_browser(case: dict[str, str]) -> None:
    assert_whatwg_agrees(case["raw"], parse_target(case["raw"], scheme=case.get("scheme", "https")))


def test_the_whatwg_parser_is_as_lenient_as_we_fear() -> None:
    """Guards the oracle: these repairs are why the strict parser refuses such input."""
    assert whatwg_host("https://0x7f.1/") == "127.0.0.1"
    assert whatwg_host("https://fal.run\\@evil.com/") == "fal.run"
    assert whatwg_host("https://fa\tl.r\nun/") == "fal.run"
    assert whatwg_host("https://fal\u00ad.run/") == "fal.run"
    assert whatwg_host("https://fal\uff0erun/") == "fal.run"
    assert whatwg_host("https://%66al.run/") == "fal.run"
    for raw in (
        "https://0x7f.1/",
        "https://fa\tl.run/",
        "https://fal\u00ad.run/",
        "https://%66al.run/",
    ):
        with pytest.raises(InvalidTarget):
            parse_target(raw)


# Pieces that the WHATWG host parser repairs or reinterprets.
WHATWG_TRICKS = [
    "\t",
    "\n",
    "\r",
    "\\",
    "%2e",
    "%2E",
    "\u3002",
    "\uff0e",
    "\u00ad",
    "\u200b",
    "\uff46",
    "%66",
    "@",
    ":",
    "0x",
    "0",
    ".",
    "..",
    "[",
    "]",
    "%00",
    "\x00",
    " ",
    "\u0131",
    "xn--",
]
HOST_PARTS = st.sampled_from([*sorted(ALLOWED_HOSTS), "fal", "run", "evil.com", *WHATWG_TRICKS])


@st.composite
def whatwg_hosts(draw: st.DrawFn) -> str:
    host = draw(st.sampled_from(sorted(ALLOWED_HOSTS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(host)))
        host = host[:at] + draw(HOST_PARTS) + host[at + draw(st.integers(0, 1)) :]
    prefix = draw(st.sampled_from(["https://", "https://", "HTTPS://", "https:\\\\", " https://"]))
    suffix = draw(st.sampled_from(["/fal-ai/flux/dev", "", ":443/x", "\\x", "/x?y=1", "./x"]))
    return prefix + host + suffix


def refused_or_agrees(raw: str) -> None:
    try:
        target = parse_target(raw)
    except InvalidTarget as refused:
        assert refused.status == 412
        return
    assert target.host in ALLOWED_HOSTS and target.scheme == "https"
    assert_whatwg_agrees(raw, target)


@settings(max_examples=800, deadline=None)
@given(whatwg_hosts())
def test_hosts_with_whatwg_repairs_are_refused_or_agree(raw: str) -> None:
    refused_or_agrees(raw)


@settings(max_examples=400, deadline=None)
@given(st.one_of(generated_urls(), mutated_urls()))
def test_generated_urls_are_refused_or_agree_with_whatwg(raw: str) -> None:
    refused_or_agrees(raw)


# --- through the live proxy -------------------------------------------------------------------


def header_safe(raw: str) -> bool:
    """Values httpx can send; CR, LF and NUL are sent as raw bytes in test_abuse.py."""
    visible = all(ch == "\t" or 0x20 <= ord(ch) != 0x7F for ch in raw)
    return visible and raw == raw.strip(" \t")  # servers strip surrounding whitespace


LIVE_REJECT = [(reason, case) for reason, case in REJECT if header_safe(raw_of(case))]


def test_most_of_the_corpus_can_be_sent_as_a_header() -> None:
    assert len(LIVE_REJECT) >= len(REJECT) * 3 // 4


def refused_live(client: httpx.Client, raw: str, statuses: tuple[int, ...] = (400, 412)) -> None:
    response = client.get(ROUTE, headers={"x-fal-target-url": raw.encode("utf-8")})
    assert response.status_code in statuses, raw
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(("reason", "case"), LIVE_REJECT)
def test_the_corpus_is_refused_by_the_live_proxy(
    client: httpx.Client, fake: httpx.Client, reason: str | None, case: dict[str, Any]
) -> None:
    if case.get("scheme") == "wss":
        pytest.skip("WebSocket targets go through the WebSocket relay")
    before = fake.get("/__fake__/stats").json()["requests"]
    refused_live(client, raw_of(case))
    assert fake.get("/__fake__/stats").json()["requests"] == before


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.one_of(whatwg_hosts(), generated_urls(), mutated_urls()).filter(header_safe))
def test_generated_urls_through_the_live_proxy(
    client: httpx.Client, fake: httpx.Client, raw: str
) -> None:
    """Refused by the parser or the policy: 400/412 (405: a GET to a cancel URL). Allowed by
    both: relayed to the fake."""
    try:
        target = parse_target(raw)
        DEFAULT_POLICY.check(target, "GET")
    except ProxyError as refusal:
        refused_live(client, raw, (refusal.status,))
        return
    response = client.get(ROUTE, headers={"x-fal-target-url": raw.encode("utf-8")})
    if DEFAULT_POLICY.is_token_request(target):
        assert response.status_code == 405  # tokens are minted by POST only
        return
    assert response.headers.get("x-fal-request-id") or response.status_code == 404
