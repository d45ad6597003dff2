"""Specification of falproxy.core.targets: which target URLs the proxy calls, and in what form.

The accepted and refused URLs live in ``tests/data/targets_*.json``; every accepted URL is
cross-checked against urllib and httpx, which must see the same scheme, host and port in both the
raw input and the rebuilt URL (no parser differential between validation and connection).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from hypothesis import given, settings

from falproxy.core.errors import InvalidTarget
from falproxy.core.targets import (
    ALLOWED_HOSTS,
    MAX_TARGET_LENGTH,
    Target,
    is_valid_segment,
    parse_target,
    parse_target_header,
)
from tests.support.target_corpus import (
    ACCEPT,
    REJECT,
    REJECT_IDS,
    generated_urls,
    mutated_urls,
    raw_of,
)


def assert_parsers_agree(target: Target, url: str) -> None:
    """urllib and httpx read ``url`` as the same scheme, host and port as ``target``."""
    split = urlsplit(url)
    assert split.scheme == target.scheme
    assert (split.hostname or "").removesuffix(".") == target.host
    assert split.port in (None, 443)
    assert split.username is None and split.password is None
    parsed = httpx.URL(url)
    assert parsed.scheme == target.scheme
    assert parsed.host.removesuffix(".") == target.host
    assert parsed.port in (None, 443)
    assert parsed.userinfo == b""


def assert_sound(raw: str, target: Target) -> None:
    """Everything an accepted target promises, whatever the input was."""
    assert target.host in ALLOWED_HOSTS
    assert target.path.startswith("/") and "//" not in target.path
    assert target.url.isascii() and target.url.isprintable() and " " not in target.url
    assert parse_target(target.url, scheme=target.scheme) == target
    assert_parsers_agree(target, raw)
    assert_parsers_agree(target, target.url)
    query = f"?{target.query}" if target.query else ""
    assert httpx.URL(target.url).raw_path == (target.path + query).encode()


# --- accepted targets -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ACCEPT, ids=[c["label"] for c in ACCEPT])
def test_an_accepted_target_is_rebuilt_from_its_validated_parts(case: dict[str, str]) -> None:
    target = parse_target(case["raw"], scheme=case.get("scheme", "https"))
    assert target.url == case["url"]
    assert target.host == case["host"]


@pytest.mark.parametrize("case", ACCEPT, ids=[c["label"] for c in ACCEPT])
def test_urllib_and_httpx_see_the_same_host_in_raw_and_rebuilt_urls(case: dict[str, str]) -> None:
    assert_sound(case["raw"], parse_target(case["raw"], scheme=case.get("scheme", "https")))


def test_the_glob_subject_is_host_path_and_query_without_scheme_or_port() -> None:
    target = parse_target("HTTPS://Queue.Fal.Run.:443/a/b?x=1&y=2")
    assert target.glob_subject == "queue.fal.run/a/b?x=1&y=2"
    assert parse_target("https://fal.run").glob_subject == "fal.run/"


def test_a_target_is_immutable() -> None:
    target = parse_target("https://fal.run/x")
    with pytest.raises(AttributeError):
        target.host = "evil.com"  # type: ignore[misc]


# --- the attack corpus ------------------------------------------------------------------------


def test_the_attack_corpus_is_large() -> None:
    assert len(REJECT) >= 120


@pytest.mark.parametrize(("reason", "case"), REJECT, ids=REJECT_IDS)
def test_the_attack_corpus_is_refused_with_a_safe_detail(
    reason: str | None, case: dict[str, Any]
) -> None:
    raw = raw_of(case)
    with pytest.raises(InvalidTarget) as refused:
        parse_target(raw, scheme=case.get("scheme", "https"))
    detail = refused.value.detail
    assert refused.value.status == 412
    assert detail.isascii() and detail.isprintable()
    assert "evil" not in detail and (len(raw) < 4 or raw not in detail)
    if reason is not None:
        assert reason in detail


@pytest.mark.parametrize(("reason", "case"), REJECT, ids=REJECT_IDS)
def test_the_attack_corpus_is_refused_as_header_bytes(
    reason: str | None, case: dict[str, Any]
) -> None:
    raw = raw_of(case).encode("utf-8")
    with pytest.raises(InvalidTarget):
        parse_target_header(raw, scheme=case.get("scheme", "https"))


# --- header bytes -----------------------------------------------------------------------------


def test_header_bytes_in_ascii_are_parsed() -> None:
    assert parse_target_header(b"https://fal.run/x").url == "https://fal.run/x"
    assert parse_target_header(b"wss://fal.run/x", scheme="wss").url == "wss://fal.run/x"


@pytest.mark.parametrize(
    "raw",
    [b"https://fal.run/caf\xe9", b"https://fal.ru\xd0\xbf/", b"https://fal.run/\x85", b"\xff"],
    ids=["latin-1 byte", "utf-8 cyrillic", "NEL", "lone 0xff"],
)
def test_header_bytes_outside_ascii_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidTarget):
        parse_target_header(raw)


def test_header_bytes_past_the_limit_are_refused_before_decoding() -> None:
    with pytest.raises(InvalidTarget, match="too long"):
        parse_target_header(b"https://fal.run/" + b"\xff" * MAX_TARGET_LENGTH)


def test_the_length_limit_is_inclusive() -> None:
    raw = "https://fal.run/"
    target = parse_target(raw + "a" * (MAX_TARGET_LENGTH - len(raw)))
    assert len(target.url) == MAX_TARGET_LENGTH


# --- API contract -----------------------------------------------------------------------------


def test_an_unknown_scheme_argument_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_target("http://fal.run/", scheme="http")


def test_a_narrower_host_set_can_be_passed() -> None:
    only_queue = frozenset({"queue.fal.run"})
    assert parse_target("https://queue.fal.run/x", allowed_hosts=only_queue).host == "queue.fal.run"
    with pytest.raises(InvalidTarget):
        parse_target("https://fal.run/x", allowed_hosts=only_queue)


def test_ip_addresses_are_refused_even_when_allow_listed() -> None:
    with pytest.raises(InvalidTarget, match="not an IP address"):
        parse_target("https://127.0.0.1/", allowed_hosts=frozenset({"127.0.0.1"}))


@pytest.mark.parametrize(
    ("segment", "valid"),
    [("dev", True), ("a%20b", True), ("..", False), ("", False), ("%2e", False), ("a b", False)],
)
def test_is_valid_segment_applies_the_path_rules(segment: str, valid: bool) -> None:
    assert is_valid_segment(segment) is valid


# --- generated and mutated URLs ---------------------------------------------------------------



def accepted_or_refused(raw: str) -> None:
    try:
        target = parse_target(raw)
    except InvalidTarget as refused:
        assert refused.detail.isascii() and refused.detail.isprintable()
        return
    assert_sound(raw, target)


@settings(max_examples=600, deadline=None)
@given(generated_urls())
def test_generated_urls_are_refused_or_agree_with_other_parsers(raw: str) -> None:
    accepted_or_refused(raw)


@settings(max_examples=600, deadline=None)
@given(mutated_urls())
def test_mutated_urls_are_refused_or_agree_with_other_parsers(raw: str) -> None:
    accepted_or_refused(raw)
