"""Specification of falproxy.core.policy: URL globs, endpoint globs and token minting.

The cases live in ``tests/data/policy_cases.json``. Glob cases pin the picomatch-compatible
semantics the Node proxy's configurations rely on; endpoint cases show that the allow-list holds
for every kind of call (run, stream, submit, and the GET/PUT queue URLs that name only the app).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from falproxy.core.errors import (
    BadRequest,
    EndpointNotAllowed,
    InvalidTarget,
    MethodNotAllowed,
    ProxyError,
)
from falproxy.core.policy import (
    DEFAULT_ALLOWED_URLS,
    TOKEN_PATH,
    Policy,
    alias_matcher,
    app_id_of,
    compile_glob,
)
from falproxy.core.targets import Target, parse_target

CASES: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "policy_cases.json").read_text("utf-8")
)
ENDPOINT_CASES = [
    (group["allowed_endpoints"], case) for group in CASES["endpoints"] for case in group["cases"]
]
STATUS_ERRORS: dict[int, type[ProxyError]] = {
    400: BadRequest,
    403: EndpointNotAllowed,
    405: MethodNotAllowed,
    412: InvalidTarget,
}


def ids(section: str) -> list[str]:
    return [case["label"] for case in CASES[section]]


def target(url: str) -> Target:
    return parse_target(url, scheme="wss" if url.startswith("wss:") else "https")


def method_for(case: dict[str, Any]) -> str:
    """The case's method; by default the one fal's clients use (PUT only to cancel)."""
    default = "PUT" if case["url"].split("?")[0].endswith("/cancel") else "GET"
    return str(case.get("method", default))


# --- globs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["globs"], ids=ids("globs"))
def test_globs_follow_the_node_proxy_semantics(case: dict[str, Any]) -> None:
    assert bool(compile_glob(case["pattern"]).fullmatch(case["subject"])) is case["match"]


@pytest.mark.parametrize("case", CASES["invalid_globs"], ids=ids("invalid_globs"))
def test_unsupported_glob_syntax_fails_at_compile_time(case: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        compile_glob(case["pattern"])


def test_a_compiled_glob_is_anchored_at_both_ends() -> None:
    glob = compile_glob("fal.run/*")
    assert glob.match("fal.run/a/b") is None
    assert glob.search("x.fal.run/a") is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab/*?\\.", max_size=10), st.text(alphabet="ab/?.", max_size=10))
def test_any_glob_either_compiles_or_raises_value_error(pattern: str, subject: str) -> None:
    try:
        glob = compile_glob(pattern)
    except ValueError:
        return
    glob.fullmatch(subject)


# --- URL allow-list ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["default_urls"], ids=ids("default_urls"))
def test_the_default_url_allow_list(case: dict[str, Any]) -> None:
    policy = Policy()
    if case["allowed"]:
        policy.check(target(case["url"]), method_for(case))
    else:
        with pytest.raises(InvalidTarget) as refused:
            policy.check(target(case["url"]), method_for(case))
        assert refused.value.status == 412


def test_the_defaults_are_the_documented_tuple() -> None:
    assert "rest.fal.ai/tokens/" in DEFAULT_ALLOWED_URLS
    assert TOKEN_PATH == "/tokens/"


# --- app ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["app_ids"], ids=ids("app_ids"))
def test_the_app_a_target_calls(case: dict[str, Any]) -> None:
    ref = app_id_of(target(case["url"]))
    if case["app_id"] is None:
        assert ref is None
    else:
        assert ref is not None
        assert (ref.app_id, ref.request_scoped) == (case["app_id"], case["request_scoped"])


# --- endpoint allow-list ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoints", "case"),
    ENDPOINT_CASES,
    ids=[f"{eps or 'unrestricted'}: {case['label']}" for eps, case in ENDPOINT_CASES],
)
def test_the_endpoint_allow_list_holds_for_every_kind_of_call(
    endpoints: list[str], case: dict[str, Any]
) -> None:
    policy = Policy(allowed_endpoints=endpoints)
    assert policy.allows_all_endpoints is (not endpoints)
    if "refused" in case:
        with pytest.raises(STATUS_ERRORS[case["refused"]]) as refused:
            policy.check(target(case["url"]), method_for(case))
        if "allow" in case:
            assert refused.value.headers == {"allow": case["allow"]}
    else:
        assert policy.check(target(case["url"]), method_for(case)) == case["app_id"]


# --- token minting ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES["token_requests"], ids=ids("token_requests"))
def test_which_targets_mint_tokens(case: dict[str, Any]) -> None:
    assert Policy().is_token_request(target(case["url"])) is case["is_token"]


@pytest.mark.parametrize("case", CASES["tokens"], ids=ids("tokens"))
def test_token_request_bodies(case: dict[str, Any]) -> None:
    policy = Policy(
        allowed_endpoints=case["allowed_endpoints"],
        max_token_expiration=case.get("max_token_expiration", 300),
    )
    body = case["body"].encode("utf-8")
    if case["status"] == 200:
        assert json.loads(policy.check_token_request(body)) == case["forwarded"]
    else:
        with pytest.raises(STATUS_ERRORS[case["status"]]) as refused:
            policy.check_token_request(body)
        assert refused.value.status == case["status"]


def test_the_forwarded_token_body_is_compact_json() -> None:
    forwarded = Policy().check_token_request(b'{ "allowed_apps" : [ "flux" ] }')
    assert forwarded == b'{"allowed_apps":["flux"],"token_expiration":300}'


@pytest.mark.parametrize(
    "body",
    [
        b'{"allowed_apps": ["flux"], "pad": "' + b"a" * 70_000 + b'"}',
        b"[" * 60_000,
        b"\xff\xfe\x00",
        b'{"allowed_apps": ["fl\xffux"]}',
        b'{"allowed_apps": ["flux"], "token_expiration": 1' + b"0" * 5000 + b"}",
    ],
    ids=["over 64 KiB", "deeply nested", "not UTF-8", "invalid UTF-8 in a string", "huge int"],
)
def test_hostile_token_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        Policy().check_token_request(body)


def test_token_errors_never_echo_the_body() -> None:
    with pytest.raises(EndpointNotAllowed) as refused:
        Policy(allowed_endpoints=["fal-ai/flux/dev"]).check_token_request(
            b'{"allowed_apps": ["evil-secret-app"]}'
        )
    assert "evil-secret-app" not in refused.value.detail


# --- request-scoped URLs and token aliases, against brute force --------------------------------

# Small alphabets keep brute force exhaustive: every glob segment below is matched by some string
# of one or two letters over {a, b}, so trying all of them as id segments decides the question.
LETTERS = ["a", "b", "aa", "ab", "ba", "bb"]
GLOB_SEGMENTS = st.sampled_from(["a", "b", "ab", "*", "**", "?", "a*", "*b", "a?", "?b"])
GLOBS = st.lists(GLOB_SEGMENTS, min_size=1, max_size=4).map("/".join)


def completions(depth: int) -> list[str]:
    """Every "/x/y..." suffix of up to ``depth`` segments from LETTERS, the empty one included."""
    found, frontier = [""], [""]
    for _ in range(depth):
        frontier = [f"{prefix}/{letters}" for prefix in frontier for letters in LETTERS]
        found += frontier
    return found


SUFFIXES = completions(4)


@settings(max_examples=200, deadline=None)
@given(GLOBS, st.sampled_from(LETTERS), st.sampled_from(LETTERS))
def test_a_status_url_passes_iff_the_glob_matches_an_id_under_its_app(
    glob: str, owner: str, alias: str
) -> None:
    regex = compile_glob(glob)
    expected = any(regex.fullmatch(f"{owner}/{alias}{suffix}") for suffix in SUFFIXES)
    status = target(f"https://queue.fal.run/{owner}/{alias}/requests/R1/status")
    policy = policy_or_none(glob)
    if policy is None:  # refused when built: no id at all, so not this one
        assert not expected
        return
    if expected:
        assert policy.check(status, "GET") == f"{owner}/{alias}"
    else:
        with pytest.raises(EndpointNotAllowed):
            policy.check(status, "GET")


@settings(max_examples=200, deadline=None)
@given(GLOBS, st.sampled_from(LETTERS))
def test_a_token_alias_passes_iff_the_glob_matches_an_id_with_that_alias(
    glob: str, alias: str
) -> None:
    regex = compile_glob(glob)
    ids = (f"{owner}/{alias}{suffix}" for owner in LETTERS for suffix in SUFFIXES)
    expected = any(regex.fullmatch(app_id) for app_id in ids)
    body = json.dumps({"allowed_apps": [alias]}).encode()
    policy = policy_or_none(glob)
    if policy is None:  # refused when built: no id at all, so none with this alias
        assert not expected
        return
    if expected:
        policy.check_token_request(body)
    else:
        with pytest.raises(EndpointNotAllowed):
            policy.check_token_request(body)


def policy_or_none(glob: str) -> Policy | None:
    """The policy of one endpoint glob; None when the glob can never match an app id."""
    try:
        return Policy(allowed_endpoints=[glob])
    except ValueError as refused:
        assert "can never match an app id [ns/]owner/alias[/...]" in str(refused)
        return None


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"allowed_urls": "fal.run/**"}, TypeError),
        ({"allowed_endpoints": "fal-ai/flux/dev"}, TypeError),
        ({"allowed_urls": ["https://fal.run/**"]}, ValueError),
        ({"allowed_urls": ["fal.run/{a,b}"]}, ValueError),
        ({"allowed_endpoints": ["/fal-ai/flux/dev"]}, ValueError),
        ({"allowed_endpoints": ["fal-ai/[a-z]*"]}, ValueError),
        ({"max_token_expiration": 0}, ValueError),
        ({"max_token_expiration": -1}, ValueError),
        ({"max_token_expiration": True}, ValueError),
        ({"max_token_expiration": 1.5}, ValueError),
    ],
    ids=[
        "URL globs as one string",
        "endpoint globs as one string",
        "URL glob with a scheme",
        "URL glob with braces",
        "endpoint glob with a leading slash",
        "endpoint glob with a class",
        "zero cap",
        "negative cap",
        "bool cap",
        "float cap",
    ],
)
def test_a_bad_policy_fails_at_start_up(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        Policy(**kwargs)


def test_an_empty_url_allow_list_allows_nothing() -> None:
    with pytest.raises(InvalidTarget):
        Policy(allowed_urls=()).check(target("https://fal.run/fal-ai/flux/dev"), "POST")


# --- issue 12: queue methods, canonical ids, minting switch, aliases in rate rules -------------

QUEUE = "https://queue.fal.run/fal-ai/flux/requests/0b7c1a2e-5f0d-4a8e-9d1c-3e2f4a5b6c7d"


@pytest.mark.parametrize(
    ("tail", "allowed"),
    [
        ("", "GET"),
        ("/status", "GET"),
        ("/status/stream", "GET"),
        ("/logs", "GET"),
        ("/cancel", "PUT"),
    ],
)
@pytest.mark.parametrize("endpoints", [[], ["fal-ai/flux/**"]], ids=["unrestricted", "restricted"])
def test_a_queue_request_url_takes_exactly_one_method(
    tail: str, allowed: str, endpoints: list[str]
) -> None:
    policy = Policy(allowed_endpoints=endpoints)
    assert policy.check(target(QUEUE + tail), allowed) == "fal-ai/flux"
    for method in sorted({"GET", "POST", "PUT", "DELETE"} - {allowed}):
        with pytest.raises(MethodNotAllowed) as refused:
            policy.check(target(QUEUE + tail), method)
        assert refused.value.status == 405
        assert refused.value.headers == {"allow": allowed}


def test_other_calls_take_any_proxied_method() -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        app_id = Policy().check(target("https://fal.run/fal-ai/flux/dev"), method)
        assert app_id == "fal-ai/flux/dev"


def test_both_spellings_of_an_endpoint_get_one_canonical_id() -> None:
    policy = Policy(allowed_endpoints=["fal-ai/flux/dev"])
    for url in ("https://fal.run/fal-ai/flux/dev", "https://fal.run/fal-ai/flux/dev/"):
        assert policy.check(target(url), "POST") == "fal-ai/flux/dev"


def test_token_minting_can_be_turned_off() -> None:
    urls = ("rest.fal.ai/**", "fal.run/**")
    on, off = Policy(urls), Policy(urls, token_minting=False)
    for url in ("https://rest.fal.ai/tokens/", "https://rest.fal.ai/TOKENS/?a=1"):
        assert on.check(target(url), "POST") is None
        with pytest.raises(EndpointNotAllowed) as refused:
            off.check(target(url), "POST")
        assert refused.value.status == 403
        assert "minting" in refused.value.detail
    assert off.check(target("https://fal.run/fal-ai/flux/dev"), "POST") == "fal-ai/flux/dev"


def test_the_apps_a_policed_token_body_names() -> None:
    body = Policy().check_token_request(b'{"allowed_apps": ["flux", "sdxl"], "x": 1}')
    assert Policy().token_apps(body) == ("flux", "sdxl")


@pytest.mark.parametrize(
    ("glob", "alias", "named"),
    [
        ("fal-ai/flux/**", "flux", True),  # fal-ai/flux is an app the token may call
        ("fal-ai/flux/dev", "flux", True),  # fal-ai/flux/dev too
        ("*/flux", "flux", True),
        ("fal-ai/flux/**", "flux-pro", False),
        ("fal-ai/flux/**", "sdxl", False),
        ("**", "anything", True),
        ("workflows/*/flux/**", "flux", True),  # a namespaced id with that alias
        ("fal-ai/flux-pro/**", "flux", False),
    ],
)
def test_a_rate_rule_counts_a_mint_when_it_could_count_an_app_the_token_names(
    glob: str, alias: str, named: bool
) -> None:
    assert alias_matcher(glob)(alias) is named
