"""The contract: the same cases against every front end a user can pick.

Each front end (tests/support/frontends.py) is a real server process started once per run
with its documented command, in front of the fake fal on its own loopback port, with one
shared configuration. Every case checks the status, the JSON ``detail`` where one is due,
the response headers that matter, and through the fake's introspection endpoints what
reached fal, or that nothing did. A case a front end cannot support is an explicit skip
that names the reason.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import TEST_KEY, TEST_KEY_SECRET, fake_upstreams, serve
from tests.support.browser import BUNDLE_DIR, DevTools, needs_browser, page_app
from tests.support.examples_server import Running, start_server
from tests.support.frontends import (
    ALLOWED_ORIGIN,
    BODY_DEADLINE,
    BODY_TIMEOUT,
    BROWSER_FRONT_ENDS,
    BUDGET_APP,
    CONTRACT_TOKEN,
    FRONT_ENDS,
    LIMITED_APP,
    MAX_BODY_BYTES,
    OTHER_ORIGIN,
    OTHER_TOKEN,
    SOCKET_OUTLIVES,
    SPEND_LIMIT,
    FrontEnd,
    contract_env,
)
from tests.support.live import (
    assert_no_key,
    drip_request,
    head,
    parse_response,
    raw_request,
    target,
)
from tests.support.live import wait_until as wait_for
from tests.support.scripted_upstream import Received, response, scripted_upstream
from tests.support.tls import make_pki
from tests.support.ws_handshakes import HANDSHAKES, answer_head, handshake, status_of
from tests.support.ws_helpers import (
    PNG_SIGNATURE,
    REALTIME,
    assert_busy_socket_closes_normally,
    last_session,
    pack,
    realtime_stats,
    refusal,
    relay_url,
    unpack,
    ws_base,
)

RUN = "https://fal.run/fal-ai/flux/dev"
QUEUE_REQUEST = "https://queue.fal.run/fal-ai/flux/requests/0b7c1a2e-5f0d-4a8e-9d1c-3e2f4a5b6c7d"
QUEUE = "https://queue.fal.run/fal-ai/flux/dev"
ECHO = "https://fal.run/fake/echo"
BEARER = {"authorization": f"Bearer {CONTRACT_TOKEN}"}
BEARER_LINE = f"Authorization: Bearer {CONTRACT_TOKEN}"
SSE_EVENTS, SSE_INTERVAL = 3, 0.4
# A stalled body must be refused within the body timeout plus this much scheduling slack.
STALL_SLACK = 3.0


@dataclass(frozen=True)
class Served:
    """A front end, running."""

    front: FrontEnd
    server: Running

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def route(self) -> str:
        return self.front.route


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    """The browser test's page, on its own origin (allowed by every front end's CORS)."""
    with serve(page_app(BUNDLE_DIR / "bundle.js")) as url:
        yield url


@pytest.fixture(scope="module", params=FRONT_ENDS, ids=lambda front: front.name)
def served(request: pytest.FixtureRequest, fake_url: str, page_url: str) -> Iterator[Served]:
    """Each front end started once, as its docs say, with the contract's settings."""
    front: FrontEnd = request.param
    env = contract_env(page_url)
    with start_server(front.server, fake_url, ready_path=front.ready_path, **env) as server:
        yield Served(front, server)


@pytest.fixture
def http(served: Served) -> Iterator[httpx.Client]:
    """A client of the front end carrying the bearer token."""
    with httpx.Client(base_url=served.url, headers=BEARER, timeout=20) as client:
        yield client


def stats(fake: httpx.Client) -> dict[str, Any]:
    answer: dict[str, Any] = fake.get("/__fake__/stats").json()
    return answer


def assert_json_detail(response: httpx.Response, status: int) -> str:
    """A JSON refusal: the status and ``{"detail": <non-empty text>}``, without the key."""
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail
    assert_no_key(response)
    return detail


def assert_forwarded_with_key(request: dict[str, Any], path: str) -> None:
    """What fal saw: the path, our key (masked by the fake), none of the caller's secrets."""
    assert request["path"] == path
    assert request["authorized"] is True
    assert request["headers"]["authorization"] == "Key ***"
    assert "x-fal-target-url" not in request["headers"]
    assert CONTRACT_TOKEN not in json.dumps(request)


# --- calls that reach fal -------------------------------------------------------------


def test_run(served: Served, http: httpx.Client, fake: httpx.Client) -> None:
    response = http.post(served.route, headers=target(RUN), json={"prompt": "a fox"})
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-fal-request-id"]
    assert response.json()["images"][0]["url"]
    assert_no_key(response)
    seen = stats(fake)
    assert seen["requests"] == 1
    assert_forwarded_with_key(seen["last_request"], "/run/fal-ai/flux/dev")


def test_queue_submit_status_result(served: Served, http: httpx.Client, fake: httpx.Client) -> None:
    submitted = http.post(served.route, headers=target(QUEUE), json={"prompt": "a fox"})
    assert submitted.status_code == 200, submitted.text[:300]
    assert_no_key(submitted)
    body = submitted.json()
    assert submitted.headers["x-fal-request-id"] == body["request_id"]
    assert stats(fake)["submits"][-1]["endpoint"] == "fal-ai/flux/dev"
    deadline = time.monotonic() + 15
    while True:
        status = http.get(served.route, headers=target(body["status_url"]))
        assert status.status_code in (200, 202), status.text[:300]
        assert_no_key(status)
        if status.json()["status"] == "COMPLETED":
            break
        assert time.monotonic() < deadline, "the queued request never completed"
        time.sleep(0.05)
    result = http.get(served.route, headers=target(body["response_url"]))
    assert result.status_code == 200, result.text[:300]
    assert result.headers["x-fal-request-id"] == body["request_id"]
    assert result.json()["images"]
    assert_no_key(result)
    path = f"/queue/fal-ai/flux/requests/{body['request_id']}"
    assert_forwarded_with_key(stats(fake)["last_request"], path)


def test_sse_arrives_event_by_event(served: Served, http: httpx.Client) -> None:
    url = f"https://fal.run/fake/slow-stream?events={SSE_EVENTS}&interval={SSE_INTERVAL}"
    # gzip accepted, as browsers do: no compressor may hold events back.
    headers = target(url, **{"accept-encoding": "gzip"})
    arrivals: list[float] = []
    text: list[str] = []
    started = time.monotonic()
    with http.stream("POST", served.route, headers=headers, json={}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        assert all(TEST_KEY_SECRET not in value for value in response.headers.values())
        for line in response.iter_lines():
            text.append(line)
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
    assert TEST_KEY_SECRET not in "\n".join(text)
    assert [json.loads(line[5:]) for line in text if line.startswith("data:")] == [
        {"i": index} for index in range(SSE_EVENTS)
    ]
    gaps = [later - earlier for earlier, later in pairwise(arrivals)]
    assert all(gap > SSE_INTERVAL / 2 for gap in gaps), f"events were held back: {arrivals}"


def test_chunked_upload(served: Served, http: httpx.Client, fake: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": '
        yield b'"chunked"}'

    # A generator body is sent with Transfer-Encoding: chunked and no Content-Length.
    response = http.post(served.route, headers=target(ECHO), content=chunks())
    assert response.status_code == 200, response.text[:300]
    assert_no_key(response)
    echo = response.json()
    assert json.loads(echo["body"]) == {"prompt": "chunked"}
    assert echo["headers"]["authorization"] == "Key ***"
    assert "x-fal-target-url" not in echo["headers"]
    assert stats(fake)["requests"] == 1


def test_client_disconnect_closes_the_upstream_stream(
    served: Served, http: httpx.Client, fake: httpx.Client
) -> None:
    url = "https://fal.run/fake/slow-stream?events=200&interval=0.1"
    with http.stream("POST", served.route, headers=target(url), json={}) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: closing it would close the connection
        assert next(line for line in lines if line.startswith("data:"))
        assert stats(fake)["open_streams"] == 1
    # Leaving the block closes our connection mid-stream: the proxy must close fal's.
    wait_for(lambda: stats(fake)["open_streams"] == 0, timeout=10)
    seen = stats(fake)
    assert seen["closed_streams"] == 1
    assert seen["disconnected_streams"] == 1


# --- refusals: nothing reaches fal ----------------------------------------------------


class Refusal(NamedTuple):
    method: str
    url: str | None  # the x-fal-target-url; None: the header is missing
    body: bytes
    status: int
    content_type: str = "application/json"
    signed_in: bool = True  # carries the bearer token
    allow: str = "POST"  # a 405's Allow header must name this method


TOO_LARGE = b'{"prompt": "' + b"x" * MAX_BODY_BYTES + b'"}'
REFUSALS = {
    "400-missing-target": Refusal("POST", None, b"{}", 400),
    "412-bad-target": Refusal("POST", "https://evil.example/fal-ai/flux/dev", b"{}", 412),
    "403-endpoint-not-allowed": Refusal("POST", "https://fal.run/other-org/model", b"{}", 403),
    "405-method": Refusal("PATCH", RUN, b"{}", 405),
    # Issue 12: a queue request URL takes one method (GET; PUT to cancel).
    "405-queue-status-by-post": Refusal("POST", f"{QUEUE_REQUEST}/status", b"{}", 405, allow="GET"),
    "405-queue-cancel-by-get": Refusal("GET", f"{QUEUE_REQUEST}/cancel", b"", 405, allow="PUT"),
    # Issue 20: with ownership on, an id the proxy never recorded is nobody's to read.
    "404-request-never-submitted": Refusal("GET", f"{QUEUE_REQUEST}/status", b"", 404),
    # Issue 12: ";" would give one endpoint a second spelling that exact rules miss.
    "412-path-parameter": Refusal("POST", RUN + ";x", b"{}", 412),
    "413-too-large": Refusal("POST", RUN, TOO_LARGE, 413),
    "415-not-json": Refusal("POST", RUN, b"a fox", 415, content_type="text/plain"),
    "401-no-token": Refusal("POST", RUN, b'{"prompt": "x"}', 401, signed_in=False),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refusal(served: Served, fake: httpx.Client, case: str) -> None:
    refusal = REFUSALS[case]
    headers = {"content-type": refusal.content_type}
    if refusal.url is not None:
        headers["x-fal-target-url"] = refusal.url
    if refusal.signed_in:
        headers.update(BEARER)
    url = served.url + served.route
    response = httpx.request(refusal.method, url, headers=headers, content=refusal.body)
    assert_json_detail(response, refusal.status)
    if refusal.status == 405:
        assert refusal.allow in response.headers["allow"]
    if refusal.status == 401:  # RFC 6750 section 3: the scheme the caller must use
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert stats(fake)["requests"] == 0, "a refused call reached fal"


def test_429_with_a_limit_configured(
    served: Served, http: httpx.Client, fake: httpx.Client
) -> None:
    limited = target(f"https://fal.run/{LIMITED_APP}")
    first = http.post(served.route, headers=limited, json={"prompt": "x"})
    assert first.status_code == 200, first.text[:300]
    second = http.post(served.route, headers=limited, json={"prompt": "x"})
    assert_json_detail(second, 429)
    assert int(second.headers["retry-after"]) > 0
    assert second.headers["ratelimit-remaining"] == "0"
    assert stats(fake)["requests"] == 1, "the refused call reached fal"
    # The limit covers its glob only: other apps still pass.
    assert http.post(served.route, headers=target(RUN), json={"prompt": "x"}).status_code == 200


def test_a_queued_request_is_its_submitters_only(
    served: Served, http: httpx.Client, fake: httpx.Client
) -> None:
    submitted = http.post(served.route, headers=target(QUEUE), json={"prompt": "a fox"})
    assert submitted.status_code == 200, submitted.text[:300]
    status_url = submitted.json()["status_url"]
    before = stats(fake)["requests"]
    other = {**target(status_url), "authorization": f"Bearer {OTHER_TOKEN}"}
    refused = httpx.get(served.url + served.route, headers=other)
    assert assert_json_detail(refused, 404) == "Request not found"
    assert stats(fake)["requests"] == before, "the refused read reached fal"
    assert http.get(served.route, headers=target(status_url)).status_code in (200, 202)


def test_402_when_a_spend_limit_is_spent(
    served: Served, http: httpx.Client, fake: httpx.Client
) -> None:
    budgeted = target(f"https://fal.run/{BUDGET_APP}")
    for _ in range(2):  # the fake's default: one unit at 0.01 USD each
        passed = http.post(served.route, headers=budgeted, json={"prompt": "x"})
        assert passed.status_code == 200, passed.text[:300]
        assert passed.headers["x-fal-billable-units"] == "1"
    before = stats(fake)["requests"]
    refused = http.post(served.route, headers=budgeted, json={"prompt": "x"})
    assert_json_detail(refused, 402)
    assert refused.json()["rule"] == f"{SPEND_LIMIT} per=identity"
    assert refused.json()["spent_usd"] == 0.02
    assert int(refused.headers["retry-after"]) > 0
    assert stats(fake)["requests"] == before, "the refused call reached fal"
    other = {**budgeted, "authorization": f"Bearer {OTHER_TOKEN}"}
    answer = httpx.post(served.url + served.route, headers=other, json={"prompt": "x"})
    assert answer.status_code == 200, answer.text[:300]


def raw_call(served: Served, body: bytes, declared: int, *, shutdown_write: bool) -> bytes:
    """A POST whose body is ``body`` although ``declared`` bytes were announced."""
    request = head(
        "POST",
        "https://queue.fal.run/fal-ai/flux/dev",
        f"authorization: Bearer {CONTRACT_TOKEN}",
        "content-type: application/json",
        f"content-length: {declared}",
        "connection: close",
        body=body,
        route=served.route,
    )
    timeout = BODY_TIMEOUT + STALL_SLACK
    try:
        return raw_request(served.url, request, timeout=timeout, shutdown_write=shutdown_write)
    except TimeoutError:
        pytest.fail(f"no answer within {timeout:g} s")


def assert_raw_refusal(raw: bytes, status: int) -> None:
    code, headers, body = parse_response(raw)
    assert code == status, raw[:400]
    assert headers["content-type"].startswith("application/json"), headers
    detail = json.loads(body)["detail"]
    assert isinstance(detail, str) and detail
    assert TEST_KEY_SECRET.encode() not in raw


def test_408_stalled_body(served: Served, fake: httpx.Client) -> None:
    if served.front.no_body_timeout:
        pytest.skip(served.front.no_body_timeout)
    started = time.monotonic()
    raw = raw_call(served, b'{"prompt": ', 100, shutdown_write=False)
    assert_raw_refusal(raw, 408)
    assert time.monotonic() - started < BODY_TIMEOUT + STALL_SLACK
    # fal never got a whole body to act on (a streaming front end may have opened the call).
    assert stats(fake)["submits"] == []


def test_408_body_dripped_past_its_deadline(served: Served, fake: httpx.Client) -> None:
    if served.front.no_body_timeout:
        pytest.skip(served.front.no_body_timeout)
    request = head(
        "POST",
        "https://queue.fal.run/fal-ai/flux/dev",
        f"authorization: Bearer {CONTRACT_TOKEN}",
        "content-type: application/json",
        "content-length: 4000",  # under the contract's 8 KiB cap
        "connection: close",
        body=b"{",
        route=served.route,
    )
    # One byte every 0.3 s never trips the 1 s chunk timeout; the 2 s deadline stops it.
    raw, seconds = drip_request(served.url, request, interval=0.3, limit=BODY_DEADLINE + 4)
    assert_raw_refusal(raw, 408)
    assert "FALPROXY_BODY_DEADLINE" in json.loads(parse_response(raw)[2])["detail"]
    assert BODY_DEADLINE - 0.5 < seconds < BODY_DEADLINE + STALL_SLACK
    assert stats(fake)["submits"] == []


def test_400_body_shorter_than_its_length(served: Served, fake: httpx.Client) -> None:
    raw = raw_call(served, b'{"prompt": "x"}', 100, shutdown_write=True)
    if served.front.eof_closes and raw:  # the server's own answer, never the proxy's JSON
        code, headers, _ = parse_response(raw)
        assert code in served.front.eof_server_statuses, raw[:400]
        assert not headers.get("content-type", "").startswith("application/json"), raw[:400]
        assert TEST_KEY_SECRET.encode() not in raw
    elif served.front.eof_closes:
        assert raw == b"", raw[:400]  # closed unanswered: see FrontEnd.eof_closes
    else:
        assert_raw_refusal(raw, 400)
    seen = stats(fake)
    assert seen["submits"] == []
    assert seen["requests"] == 0, "a truncated body was forwarded"


# --- an HTTPS upstream: FALPROXY_UPSTREAM_CA_FILE is the trust ---------------------------


async def _answer_ok(received: Received, writer: asyncio.StreamWriter) -> bool:
    writer.write(response("200 OK", b'{"status": "COMPLETED"}', "content-type: application/json"))
    return True


def test_upstream_ca_file_is_the_trust(served: Served, fake_url: str, tmp_path: Path) -> None:
    """Each front end started again with FALPROXY_UPSTREAM_CA_FILE naming a test CA: an
    upstream signed by it is called (with the key), one signed by another CA is a 502
    before a single byte is sent to it. fal.run goes to the first, queue.fal.run (and the
    backup domains) to the second."""
    right, other = make_pki(tmp_path / "right"), make_pki(tmp_path / "other")
    with (
        scripted_upstream(_answer_ok, tls=right.server_context()) as trusted,
        scripted_upstream(_answer_ok, tls=other.server_context()) as untrusted,
    ):
        upstreams = {
            **fake_upstreams(fake_url),
            "fal.run": f"https://127.0.0.1:{trusted.port}",
            "queue.fal.run": f"https://127.0.0.1:{untrusted.port}",
            # fal's backup domains are tried when a handshake fails: under the same trust
            "queue.falrun.com": f"https://127.0.0.1:{untrusted.port}",
            "falrun.com": f"https://127.0.0.1:{untrusted.port}",
        }
        env = {
            **contract_env(),
            "FALPROXY_UPSTREAM_CA_FILE": str(right.ca),
            "FALPROXY_UPSTREAMS": ",".join(f"{host}={base}" for host, base in upstreams.items()),
        }
        front = served.front
        with (
            start_server(front.server, fake_url, ready_path=front.ready_path, **env) as server,
            httpx.Client(base_url=server.url, headers=BEARER, timeout=20) as http,
        ):
            works = http.post(front.route, headers=target(RUN), json={"prompt": "a fox"})
            refused = http.post(front.route, headers=target(QUEUE), json={"prompt": "a fox"})
    assert works.status_code == 200, works.text[:300]
    assert works.json() == {"status": "COMPLETED"}
    assert_no_key(works)
    (received,) = trusted.requests
    assert received.path == b"/fal-ai/flux/dev"
    assert f"\r\nauthorization: key {TEST_KEY}\r\n".encode() in received.head.lower()
    assert assert_json_detail(refused, 502) == "The fal API could not be reached"
    assert untrusted.raw_bytes == 0 and untrusted.requests == []


# --- CORS (FALPROXY_CORS_ORIGINS=https://app.example.com) -----------------------------


def preflight(origin: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type, x-fal-target-url, authorization",
    }


def test_cors_preflight_from_the_allowed_origin(served: Served, fake: httpx.Client) -> None:
    # Browsers send no credentials on a preflight.
    response = httpx.options(served.url + served.route, headers=preflight(ALLOWED_ORIGIN))
    assert response.status_code == 204, response.text[:300]
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    granted = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-fal-target-url", "authorization"} <= granted
    assert "origin" in response.headers["vary"].lower()
    assert stats(fake)["requests"] == 0, "a preflight reached fal"


def test_cors_preflight_from_another_origin(served: Served, fake: httpx.Client) -> None:
    response = httpx.options(served.url + served.route, headers=preflight(OTHER_ORIGIN))
    assert_json_detail(response, 403)
    assert "access-control-allow-origin" not in response.headers
    assert stats(fake)["requests"] == 0, "a preflight reached fal"


def test_cors_simple_call(served: Served, http: httpx.Client, fake: httpx.Client) -> None:
    headers = target(RUN, origin=ALLOWED_ORIGIN)
    response = http.post(served.route, headers=headers, json={"prompt": "x"})
    assert response.status_code == 200, response.text[:300]
    # One Allow-Origin, ours: fal's own "*" is replaced.
    assert response.headers.get_list("access-control-allow-origin") == [ALLOWED_ORIGIN]
    assert "x-fal-request-id" in response.headers["access-control-expose-headers"]
    assert stats(fake)["requests"] == 1
    stranger = http.post(served.route, headers=target(RUN, origin=OTHER_ORIGIN), json={})
    assert "access-control-allow-origin" not in stranger.headers


# --- operational endpoints --------------------------------------------------------------


def skip_without_ops(served: Served) -> None:
    if served.front.no_ops:
        pytest.skip(served.front.no_ops)


def test_healthz(served: Served) -> None:
    skip_without_ops(served)
    response = httpx.get(served.url + "/healthz")
    assert response.status_code == 200, response.text[:300]
    assert response.json() == {"status": "ok"}


def test_readyz(served: Served) -> None:
    skip_without_ops(served)
    response = httpx.get(served.url + "/readyz")
    assert response.status_code == 200, response.text[:300]
    assert response.json()["status"] == "ready"


def test_metrics(served: Served, http: httpx.Client) -> None:
    skip_without_ops(served)
    http.post(served.route, headers=target(RUN), json={"prompt": "x"})  # at least one call
    response = httpx.get(served.url + "/metrics")
    assert response.status_code == 200, response.text[:300]
    assert response.headers["content-type"].startswith("text/plain")
    assert "falproxy_requests" in response.text
    assert TEST_KEY_SECRET not in response.text


# --- WebSockets ------------------------------------------------------------------------


def skip_without_websockets(served: Served) -> None:
    if served.front.no_websockets:
        pytest.skip(served.front.no_websockets)


@pytest.mark.parametrize(
    ("query", "bearer", "status"),
    [
        ("", True, 400),  # no target
        ("?fal_target_url=https%3A%2F%2Ffal.run%2Ffal-ai%2Fflux%2Fdev%2Frealtime", True, 412),
        ("?fal_target_url=" + quote(REALTIME, safe=""), False, 401),
    ],
    ids=["400-missing-target", "412-bad-target", "401-no-token"],
)
def test_websocket_handshake_refusal(
    served: Served, fake: httpx.Client, fake_url: str, query: str, bearer: bool, status: int
) -> None:
    skip_without_websockets(served)
    headers = BEARER if bearer else {}
    code, body = refusal(f"{ws_base(served.url)}{served.route}{query}", additional_headers=headers)
    assert code == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert TEST_KEY_SECRET not in json.dumps(body)
    assert realtime_stats(fake_url)["opened"] == 0, "a refused socket reached fal"


def test_websocket_from_another_origin_is_refused(
    served: Served, fake: httpx.Client, fake_url: str
) -> None:
    """Cross-site WebSocket hijacking (issue 12 item 3): only listed origins may open one."""
    skip_without_websockets(served)
    url = relay_url(served.url, route=served.route)
    code, body = refusal(url, additional_headers=BEARER, origin=OTHER_ORIGIN)
    assert (code, body) == (403, {"detail": "WebSockets from this origin are not allowed"})
    assert realtime_stats(fake_url)["opened"] == 0, "a foreign page's socket reached fal"
    with connect(url, additional_headers=BEARER, origin=ALLOWED_ORIGIN) as ws:
        ws.send(pack({"prompt": "a fox"}))
        assert unpack(ws.recv(timeout=10))["images"]


def test_websocket_relays_a_realtime_message(
    served: Served, fake: httpx.Client, fake_url: str
) -> None:
    skip_without_websockets(served)
    with connect(relay_url(served.url, route=served.route), additional_headers=BEARER) as ws:
        assert all(TEST_KEY_SECRET not in value for value in ws.response.headers.values())
        ws.send(pack({"prompt": "a fox", "request_id": "contract"}))
        output = unpack(ws.recv(timeout=10))
    assert output["request_id"] == "contract"
    assert output["images"][0]["content"].startswith(PNG_SIGNATURE)
    session = last_session(fake_url)
    assert session["auth"] == "key"
    assert session["headers"]["authorization"] == "Key ***"
    assert "x-fal-target-url" not in session["headers"]


def test_a_busy_websocket_outlives_every_timeout(served: Served, fake_url: str) -> None:
    """Issue 18 hole 0: a realtime session lasts minutes; no timeout of the proxy's
    configuration (header, body, ping) may cut a socket that carries data."""
    skip_without_websockets(served)
    url = relay_url(served.url, route=served.route)
    fal_hears = 1000
    if served.front.client_close_to_fal is not None:
        fal_hears = served.front.client_close_to_fal[1]  # the server's report, see FrontEnd
    assert_busy_socket_closes_normally(
        url, fake_url, SOCKET_OUTLIVES, fal_hears=fal_hears, additional_headers=BEARER
    )


@pytest.mark.parametrize("case", HANDSHAKES, ids=list(HANDSHAKES))
def test_websocket_handshakes_get_the_same_status_everywhere(served: Served, case: str) -> None:
    """The native front end checks handshakes itself (RFC 6455 4.2.1), the others through
    uvicorn's WebSocket protocol: one corpus, one status per case, on every front end."""
    skip_without_websockets(served)
    kwargs, expected = HANDSHAKES[case]
    if served.front.server_handshakes is not None:  # the ASGI server's own answer, see FrontEnd
        expected = served.front.server_handshakes[1].get(case, expected)
    path = relay_url(served.url, route=served.route).removeprefix(ws_base(served.url))
    raw = answer_head(served.url, handshake(path, BEARER_LINE, **kwargs))
    assert status_of(raw) == expected, raw[:300]


# --- the official client in a browser ---------------------------------------------------


@needs_browser
def test_official_client_in_a_browser(
    served: Served,
    fake: httpx.Client,
    fake_url: str,
    page_url: str,
    request: pytest.FixtureRequest,
) -> None:
    if served.front.name not in BROWSER_FRONT_ENDS:
        pytest.skip(
            "issue 11 runs the browser against falproxy serve and the FastAPI mount only; "
            "this front end's HTTP contract is covered by the cases above"
        )
    request.getfixturevalue("bundle")  # built (or taken from the cache) before navigating
    browser: DevTools = request.getfixturevalue("browser")
    route = served.url + served.route
    steps = "subscribe,stream,upload,realtime"
    query = f"proxy={route}&token={CONTRACT_TOKEN}&steps={steps}&fake={ws_base(fake_url)}"
    report = browser.render(f"{page_url}/?{query}")
    assert TEST_KEY_SECRET not in json.dumps(report)
    failed = {name: step for name, step in report.items() if not step["ok"]}
    assert not failed, failed
    values = {name: step["value"] for name, step in report.items()}
    assert values["subscribe"]["images"] == 1 and values["subscribe"]["last"] == "COMPLETED"
    assert values["stream"]["events"] >= 2 and values["stream"]["images"] == 1
    assert values["upload"]["body"] == "hello from a browser"
    assert values["realtime"] == {"images": 1, "requestId": "browser-realtime"}
    # The token was minted through the proxy, then the socket went to fal directly with it.
    assert last_session(fake_url)["auth"] == "token"


# --- the key, in the server's own output -------------------------------------------------


def test_the_key_never_appears_in_the_server_output(served: Served) -> None:
    """Runs last for each front end: its stdout and stderr after every case above."""
    log = served.server.log()
    assert log, "the server printed nothing: output is not captured"
    assert TEST_KEY_SECRET not in log
