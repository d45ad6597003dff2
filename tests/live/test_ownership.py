"""Request ownership over real sockets: a queued request is read by its submitter only.

The proxy is a real server in front of the fake fal; the fake's stats say whether a
refused read reached it (it must not).
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.hook_support import bearer, live_proxy

ROUTE = "/api/fal/proxy"
SUBMIT = "https://queue.fal.run/fal-ai/flux/dev"
TOKENS = ("tok-a", "tok-b")


def call(
    client: httpx.Client, method: str, target: str, token: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {"x-fal-target-url": target, "content-type": "application/json"}
    if token:
        headers.update(bearer(token))
    return client.request(method, ROUTE, headers=headers, **kw)


def submit(client: httpx.Client, token: str | None) -> str:
    answer = call(client, "POST", SUBMIT, token, json={"prompt": "a fox"})
    assert answer.status_code == 200, answer.text
    request_id: str = answer.json()["request_id"]
    return request_id


def urls(request_id: str) -> dict[str, tuple[str, str]]:
    base = f"https://queue.fal.run/fal-ai/flux/requests/{request_id}"
    return {
        "status": ("GET", f"{base}/status"),
        "stream": ("GET", f"{base}/status/stream"),
        "logs": ("GET", f"{base}/status?logs=1"),
        "result": ("GET", base),
        "cancel": ("PUT", f"{base}/cancel"),
    }


def wait_completed(client: httpx.Client, request_id: str, token: str | None) -> None:
    """Poll the request's status (through the proxy) until fal says COMPLETED."""
    deadline = time.monotonic() + 10
    while call(client, "GET", urls(request_id)["status"][1], token).json()["status"] != "COMPLETED":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def fake_calls(fake: httpx.Client) -> int:
    return int(fake.get("/__fake__/stats").json()["requests"])


def test_only_the_submitter_reads_its_request(fake_url: str, fake: httpx.Client) -> None:
    with live_proxy(fake_url, auth_tokens=TOKENS) as client:
        request_id = submit(client, "tok-a")
        # Written before the submit answer reached us: an immediate poll finds it.
        assert call(client, "GET", urls(request_id)["status"][1], "tok-a").status_code in (200, 202)
        before = fake_calls(fake)
        for method, target in urls(request_id).values():
            refused = call(client, method, target, "tok-b")
            assert refused.status_code == 404, (target, refused.text)
            assert refused.json() == {"detail": "Request not found"}
        assert fake_calls(fake) == before  # nothing reached fal


def test_an_id_the_proxy_never_saw_is_404(fake_url: str, fake: httpx.Client) -> None:
    with live_proxy(fake_url, auth_tokens=TOKENS) as client:
        before = fake_calls(fake)
        for method, target in urls("0f9e0b0e-0000-4000-8000-000000000000").values():
            assert call(client, method, target, "tok-a").status_code == 404
        assert fake_calls(fake) == before


def test_a_request_is_read_only_through_its_own_app(fake_url: str) -> None:
    with live_proxy(fake_url, auth_tokens=TOKENS) as client:
        request_id = submit(client, "tok-a")
        other_app = f"https://queue.fal.run/fal-ai/other/requests/{request_id}/status"
        assert call(client, "GET", other_app, "tok-a").status_code == 404


def test_anonymous_callers_share_their_requests_and_never_see_others(fake_url: str) -> None:
    with live_proxy(fake_url, auth_tokens=TOKENS, allow_anonymous=True) as client:
        anonymous = submit(client, None)
        owned = submit(client, "tok-a")
        assert call(client, "GET", urls(anonymous)["status"][1]).status_code in (200, 202)
        assert call(client, "GET", urls(anonymous)["status"][1], "tok-a").status_code == 404
        assert call(client, "GET", urls(owned)["status"][1]).status_code == 404


def test_off_and_auto_without_authentication_relay_every_id(fake_url: str) -> None:
    unknown = urls("0f9e0b0e-0000-4000-8000-000000000000")["status"][1]
    with live_proxy(fake_url, auth_tokens=TOKENS, request_ownership="off") as client:
        request_id = submit(client, "tok-a")
        assert call(client, "GET", urls(request_id)["status"][1], "tok-b").status_code in (200, 202)
        assert call(client, "GET", unknown, "tok-a").status_code == 404  # fal's own 404
    with live_proxy(fake_url, allow_anonymous=True) as client:
        request_id = submit(client, None)
        assert call(client, "GET", urls(request_id)["status"][1]).status_code in (200, 202)


def test_on_without_authentication_serves_only_ids_it_recorded(
    fake_url: str, fake: httpx.Client
) -> None:
    with live_proxy(fake_url, request_ownership="on", allow_anonymous=True) as client:
        request_id = submit(client, None)
        assert call(client, "GET", urls(request_id)["status"][1]).status_code in (200, 202)
        before = fake_calls(fake)
        assert call(client, "GET", urls("not-ours")["status"][1]).status_code == 404
        assert fake_calls(fake) == before
