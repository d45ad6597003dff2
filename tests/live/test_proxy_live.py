"""The proxy over real sockets, in front of the fake fal on its own port."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from falproxy import FalProxy
from tests.conftest import proxy_config, serve
from tests.support.live import JSON, ROUTE, assert_no_key, target
from tests.support.live import wait_until as wait_for


@pytest.fixture
def proxy_factory(fake_url: str) -> Iterator[object]:
    """Start extra proxies with custom settings; all stopped at teardown."""
    stack: list[object] = []

    def start(**overrides: object) -> str:
        manager = serve(FalProxy(proxy_config(fake_url, **overrides)))
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)  # type: ignore[attr-defined]


def test_health(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def access_lines(collector: object) -> list[str]:
    return [line for line in collector.lines if "outcome=" in line]  # type: ignore[attr-defined]


def test_sync_run(client: httpx.Client, no_key_in_logs: object) -> None:
    response = client.post(
        ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={"prompt": "a fox"}
    )
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"]
    image = response.json()["images"][0]
    assert {"url", "width", "height", "content_type"} <= image.keys()
    assert_no_key(response)
    wait_for(lambda: access_lines(no_key_in_logs))
    assert "app=fal-ai/flux/dev status=200 outcome=ok" in access_lines(no_key_in_logs)[-1]


def test_validation_error_passes_through(client: httpx.Client) -> None:
    response = client.post(ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]


def test_queue_submit_status_result(client: httpx.Client) -> None:
    submitted = client.post(
        ROUTE, headers=target("https://queue.fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
    )
    assert submitted.status_code == 200
    body = submitted.json()
    assert body["status_url"].startswith("https://queue.fal.run/fal-ai/flux/requests/")
    deadline = time.monotonic() + 10
    while True:
        status = client.get(ROUTE, headers=target(body["status_url"] + "?logs=1"))
        assert status.status_code in (200, 202)
        if status.json()["status"] == "COMPLETED":
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    result = client.get(ROUTE, headers=target(body["response_url"]))
    assert result.status_code == 200
    assert result.json()["images"]
    assert_no_key(result)


def test_cancel_bodiless_put(client: httpx.Client) -> None:
    submitted = client.post(
        ROUTE, headers=target("https://queue.fal.run/fake/never-completes"), json={"prompt": "x"}
    ).json()
    cancel = client.put(ROUTE, headers=target(submitted["cancel_url"]))
    assert cancel.status_code == 202
    assert cancel.json() == {"status": "CANCELLATION_REQUESTED"}


def test_status_stream_arrives_event_by_event(client: httpx.Client) -> None:
    submitted = client.post(
        ROUTE, headers=target("https://queue.fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
    ).json()
    url = submitted["status_url"] + "/stream?logs=1"
    with client.stream("GET", ROUTE, headers=target(url)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-cache"
        statuses = [
            json.loads(line[5:])["status"]
            for line in response.iter_lines()
            if line.startswith("data:")
        ]
    assert statuses[0] in ("IN_QUEUE", "IN_PROGRESS")
    assert statuses[-1] == "COMPLETED"
    assert len(statuses) >= 3


def test_sse_first_event_well_before_the_end(client: httpx.Client) -> None:
    url = "https://fal.run/fake/slow-stream?events=4&interval=0.4"
    started = time.monotonic()
    arrivals = []
    with client.stream("POST", ROUTE, headers=target(url), json={}) as response:
        for line in response.iter_lines():
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 4
    assert arrivals[0] < 0.3, "the first event was held back"
    assert arrivals[-1] - arrivals[0] > 1.0


def test_model_stream_endpoint(client: httpx.Client) -> None:
    with client.stream(
        "POST",
        ROUTE,
        headers=target("https://fal.run/fal-ai/flux/dev/stream"),
        json={"prompt": "x"},
    ) as response:
        events = [
            json.loads(line[5:]) for line in response.iter_lines() if line.startswith("data:")
        ]
    assert len(events) >= 3
    assert "images" in events[-1]


def test_client_disconnect_closes_upstream(
    client: httpx.Client, fake: httpx.Client, no_key_in_logs: object
) -> None:
    def stats() -> dict[str, int]:
        return fake.get("/__fake__/stats").json()  # type: ignore[no-any-return]

    before = stats()
    url = "https://fal.run/fake/slow-stream?events=50&interval=0.2"
    with client.stream("POST", ROUTE, headers=target(url), json={}) as response:
        # Keep the iterator referenced: an abandoned httpx line iterator closes the connection.
        lines = response.iter_lines()
        assert any(line.startswith("data:") for line in lines)
        wait_for(lambda: stats()["open_streams"] > before["open_streams"], timeout=15)
    # Leaving the block closes our connection mid-stream.
    wait_for(lambda: stats()["disconnected_streams"] > before["disconnected_streams"], timeout=15)
    wait_for(lambda: stats()["open_streams"] <= before["open_streams"], timeout=15)
    wait_for(lambda: "outcome=client_gone" in " ".join(access_lines(no_key_in_logs)))


def test_redirect_is_returned_not_followed(client: httpx.Client) -> None:
    response = client.post(ROUTE, headers=target("https://fal.run/fake/redirect"), json={})
    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/elsewhere"


def test_forwarded_headers_are_allow_listed(client: httpx.Client) -> None:
    headers = target(
        "https://fal.run/fake/echo?a=1&b=two",
        authorization="Bearer browser-session",
        cookie="session=abc",
        **{"x-fal-queue-priority": "low", "x-custom": "nope", "accept": "application/json"},
    )
    response = client.post(ROUTE, headers=headers, json={"prompt": "x"})
    echo = response.json()
    seen = echo["headers"]
    assert echo["authorized"] is True
    assert seen["authorization"] == "Key ***"
    assert "cookie" not in seen
    assert "x-custom" not in seen
    assert "x-fal-target-url" not in seen
    assert seen["x-fal-queue-priority"] == "low"
    assert seen["x-fal-client-proxy"].startswith("falproxy/")
    assert echo["query"] == "a=1&b=two"
    assert json.loads(echo["body"]) == {"prompt": "x"}


def test_upstream_error_status_kept(client: httpx.Client) -> None:
    response = client.post(ROUTE, headers=target("https://fal.run/fake/fail-500"), json={})
    assert response.status_code == 500
    assert response.headers["x-fal-error-type"] == "internal_error"


def test_storage_upload_through_proxy(client: httpx.Client) -> None:
    url = "https://rest.fal.ai/storage/upload/initiate?storage_type=fal-cdn-v3"
    initiated = client.post(
        ROUTE, headers=target(url), json={"content_type": "text/plain", "file_name": "a.txt"}
    )
    assert initiated.status_code == 200
    upload = initiated.json()
    put = httpx.put(upload["upload_url"], content=b"hello", headers={"content-type": "text/plain"})
    assert put.status_code == 200
    assert httpx.get(upload["file_url"]).content == b"hello"


@pytest.mark.parametrize(
    ("method", "headers", "body", "status"),
    [
        ("GET", JSON, None, 400),
        ("GET", target("http://fal.run/x/y"), None, 412),
        ("GET", target("https://fal.run@evil.example/x"), None, 412),
        ("GET", target("https://evil.example/x"), None, 412),
        ("GET", target("https://rest.fal.ai/storage/upload/initiate?storage_type=gcs"), None, 412),
        ("PATCH", target("https://fal.run/x/y"), None, 405),
        ("HEAD", target("https://fal.run/x/y"), None, 405),
        (
            "POST",
            {"x-fal-target-url": "https://fal.run/x/y", "content-type": "text/plain"},
            b"hi",
            415,
        ),
        ("POST", {"x-fal-target-url": "https://fal.run/x/y"}, b"{}", 415),
        ("GET", target("https://rest.fal.ai/tokens/"), None, 405),
    ],
)
def test_refusals(
    client: httpx.Client,
    fake: httpx.Client,
    method: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
) -> None:
    before = fake.get("/__fake__/stats").json()["requests"]
    response = client.request(method, ROUTE, headers=headers, content=body)
    assert response.status_code == status
    if method != "HEAD":
        assert isinstance(response.json()["detail"], str)
    assert fake.get("/__fake__/stats").json()["requests"] == before, "a refused call was forwarded"


def test_unknown_path_is_404(client: httpx.Client) -> None:
    assert client.get("/elsewhere").status_code == 404


def test_body_over_cap_is_413(proxy_factory: object) -> None:
    url = proxy_factory(max_body_bytes=1000)  # type: ignore[operator]
    headers = target("https://fal.run/fake/echo")
    declared = httpx.post(url + ROUTE, headers=headers, content=b"[" + b"1," * 600 + b"1]")
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    streamed = httpx.post(url + ROUTE, headers=headers, content=chunks())
    assert streamed.status_code == 413


def test_endpoint_allow_list(proxy_factory: object) -> None:
    url = proxy_factory(allowed_endpoints=("fal-ai/flux/**",))  # type: ignore[operator]
    ok = httpx.post(
        url + ROUTE, headers=target("https://queue.fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
    )
    assert ok.status_code == 200
    status = httpx.get(url + ROUTE, headers=target(ok.json()["status_url"]))
    assert status.status_code in (200, 202)
    for method in ("GET", "POST", "PUT"):
        refused = httpx.request(
            method, url + ROUTE, headers=target("https://fal.run/fal-ai/other/dev")
        )
        assert refused.status_code == 403


def test_token_minting_is_policed(proxy_factory: object) -> None:
    url = proxy_factory(  # type: ignore[operator]
        allowed_endpoints=("fal-ai/fast-lcm-diffusion/**",), max_token_expiration=60
    )
    headers = target("https://rest.fal.ai/tokens/")
    ok = httpx.post(
        url + ROUTE,
        headers=headers,
        json={"allowed_apps": ["fast-lcm-diffusion"], "token_expiration": 3600},
    )
    assert ok.status_code == 200
    token = ok.json()
    assert isinstance(token, str) and token.count(".") == 2
    payload = json.loads(_b64(token.split(".")[1]))
    assert payload["exp"] - time.time() <= 61
    refused = httpx.post(
        url + ROUTE, headers=headers, json={"allowed_apps": ["flux"], "token_expiration": 60}
    )
    assert refused.status_code == 403
    malformed = httpx.post(url + ROUTE, headers=headers, json={"allowed_apps": "x"})
    assert malformed.status_code == 400


def _b64(segment: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def test_upstream_down_is_502(proxy_factory: object) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    url = proxy_factory(upstreams={"fal.run": dead})  # type: ignore[operator]
    response = httpx.post(url + ROUTE, headers=target("https://fal.run/x/y"), json={})
    assert response.status_code == 502
    assert "x-fal-request-id" not in response.headers
    assert response.json()["detail"]


def test_upstream_stall_is_504(proxy_factory: object) -> None:
    url = proxy_factory(upstream_timeout=0.5)  # type: ignore[operator]
    started = time.monotonic()
    response = httpx.post(
        url + ROUTE, headers=target("https://fal.run/fake/stall?seconds=5"), json={}
    )
    assert response.status_code == 504
    assert time.monotonic() - started < 3
