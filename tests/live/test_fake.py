"""The fake fal upstream, over real sockets: a specification of what it promises.

One uvicorn server per module runs ``create_fake_app(speed=0.05, expected_key=KEY)``; a few
tests start their own instance for settings the shared one cannot have (speed 0, a prefix).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import inspect
import json
import logging
import ssl
import struct
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp

import falproxy.fake
from falproxy.fake import create_fake_app
from falproxy.fake.server import RedactTokens

KEY = "test-key-id:test-key-secret"
AUTH = {"authorization": f"Key {KEY}"}
SPEED = 0.05
TLS = ssl.create_default_context()  # built once: httpx would load CA files for every client


# --- live server and PNG helpers -----------------------------------------------------


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port; yields the base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        ws="none",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="fake-fal", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature, CRCs and pixel data."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset = 8
    kinds = []
    idat: list[bytes] = []
    size = (0, 0)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        kinds.append(kind)
        if kind == b"IDAT":
            idat.append(body)
        offset += 12 + length
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    width, height = size
    pixels = zlib.decompress(b"".join(idat))
    assert len(pixels) == height * (1 + 3 * width)  # 8-bit RGB rows, one filter byte each
    return width, height


@pytest.fixture(scope="module")
def fake_base() -> Iterator[str]:
    with serve(create_fake_app(speed=SPEED, expected_key=KEY)) as base:
        yield base


@pytest.fixture
async def fal(fake_base: str) -> AsyncIterator[httpx.AsyncClient]:
    """An authorised client for the shared fake."""
    async with httpx.AsyncClient(base_url=fake_base, headers=AUTH, timeout=5, verify=TLS) as client:
        yield client


@pytest.fixture
async def anon(fake_base: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client without credentials."""
    async with httpx.AsyncClient(base_url=fake_base, timeout=5, verify=TLS) as client:
        yield client


async def submit(fal: httpx.AsyncClient, endpoint: str, **payload: Any) -> dict[str, Any]:
    response = await fal.post(f"/queue/{endpoint}", json={"prompt": "a cat", **payload})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def local(url: str) -> str:
    """The fake-relative path of a public queue URL."""
    assert url.startswith("https://queue.fal.run/")
    return "/queue/" + url.removeprefix("https://queue.fal.run/")


async def poll_until_completed(fal: httpx.AsyncClient, status_url: str) -> list[httpx.Response]:
    seen = []
    for _ in range(500):
        response = await fal.get(local(status_url), params={"logs": "1"})
        seen.append(response)
        if response.json()["status"] == "COMPLETED":
            return seen
        await asyncio.sleep(0.005)
    raise AssertionError("never completed")


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[float, str]]:
    """Yield (arrival time, line) for each non-empty SSE line."""
    async for line in response.aiter_lines():
        if line:
            yield time.monotonic(), line


async def stats(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/__fake__/stats")).json()
    return body


async def wait_for_stats(client: httpx.AsyncClient, **expected: int) -> dict[str, Any]:
    with anyio.fail_after(1.0):
        while True:
            current = await stats(client)
            if all(current[k] == v for k, v in expected.items()):
                return current
            await asyncio.sleep(0.02)


# --- public surface -----------------------------------------------------------------


def test_public_names_are_pinned() -> None:
    assert falproxy.fake.__all__ == ["create_fake_app", "run_fake"]


def test_run_fake_binds_loopback_by_default() -> None:
    assert inspect.signature(falproxy.fake.run_fake).parameters["host"].default == "127.0.0.1"


def test_access_log_redacts_tokens() -> None:
    args = ("1.2.3.4:5", "GET", "/run/a/b?fal_jwt_token=abc.def.ghi&x=1", "1.1", 200)
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, "%s %s %s %s %d", args, None)
    assert RedactTokens().filter(record)
    assert record.getMessage() == "1.2.3.4:5 GET /run/a/b?fal_jwt_token=***&x=1 1.1 200"


@pytest.mark.parametrize("speed", [-1.0, float("nan")])
def test_rejects_bad_speed(speed: float) -> None:
    with pytest.raises(ValueError):
        create_fake_app(speed=speed)


# --- fal.run --------------------------------------------------------------------------


async def test_run_returns_a_deterministic_image_output(fal: httpx.AsyncClient) -> None:
    payload = {"prompt": "a lighthouse", "image_size": "square", "num_images": 2}
    first = await fal.post("/run/fal-ai/flux/dev", json=payload)
    second = await fal.post("/run/fal-ai/flux/dev", json=payload)
    assert first.status_code == 200
    uuid.UUID(first.headers["x-fal-request-id"])
    assert first.headers["x-fal-request-id"] != second.headers["x-fal-request-id"]
    body = first.json()
    assert body == second.json()
    assert body["prompt"] == "a lighthouse"
    assert body["has_nsfw_concepts"] == [False, False]
    assert isinstance(body["seed"], int)
    assert body["timings"]["inference"] > 0
    image = body["images"][0]
    assert (image["width"], image["height"], image["content_type"]) == (512, 512, "image/png")
    assert set(image) == {"url", "width", "height", "content_type", "file_name", "file_size"}


async def test_run_echoes_the_seed_and_accepts_get_inputs(fal: httpx.AsyncClient) -> None:
    response = await fal.get(
        "/run/fal-ai/flux/dev", params={"prompt": "x", "seed": "7", "image_size": "portrait_16_9"}
    )
    body = response.json()
    assert response.status_code == 200
    assert body["seed"] == 7
    assert (body["images"][0]["width"], body["images"][0]["height"]) == (576, 1024)


async def test_run_without_prompt_is_a_422_validation_error(fal: httpx.AsyncClient) -> None:
    response = await fal.post("/run/fal-ai/flux/dev", json={"image_size": "square"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}]
    }


@pytest.mark.parametrize(
    "authorization",
    [None, "Key", "Key wrong-key", "Bearer test-key-id:test-key-secret", KEY],
)
async def test_run_refuses_missing_or_wrong_keys(
    anon: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = await anon.post("/run/fake/image", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)
    assert "wrong-key" not in response.text and KEY not in response.text
    uuid.UUID(response.headers["x-fal-request-id"])
    assert (await stats(anon))["last_request"]["authorized"] is False


@pytest.mark.parametrize(
    ("endpoint", "status", "error_type"),
    [("fake/fail-500", 500, "internal_error"), ("fake/timeout-user", 504, "request_timeout")],
)
async def test_error_scenarios_use_fal_error_shapes(
    fal: httpx.AsyncClient, endpoint: str, status: int, error_type: str
) -> None:
    response = await fal.post(f"/run/{endpoint}", json={})  # fails even without a prompt
    assert response.status_code == status
    assert response.json()["error_type"] == error_type
    assert response.headers["x-fal-error-type"] == error_type
    expected_timeout_type = "user" if status == 504 else None
    assert response.headers.get("x-fal-request-timeout-type") == expected_timeout_type


async def test_fail_422_scenario(fal: httpx.AsyncClient) -> None:
    response = await fal.post("/run/fake/fail-422", json={"prompt": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "prompt"]


async def test_probe_scenarios(fal: httpx.AsyncClient) -> None:
    redirect = await fal.post("/run/fake/redirect", json={})
    assert redirect.status_code == 302
    assert redirect.headers["location"] == "https://example.com/elsewhere"
    teapot = await fal.get("/run/fake/status/418")
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "fake status"})
    octets = await fal.get("/run/fake/bytes", params={"size": 200_000})
    assert octets.headers["content-type"] == "application/octet-stream"
    assert octets.content == (bytes(range(256)) * 800)[:200_000]


async def test_echo_masks_credentials(fal: httpx.AsyncClient) -> None:
    response = await fal.post(
        "/run/fake/echo/sub?a=1&fal_jwt_token=secret-token",
        content=b'{"x": 1}',
        headers={"x-fal-queue-priority": "low", "content-type": "application/json"},
    )
    body = response.json()
    assert body["method"] == "POST"
    assert body["path"] == "/run/fake/echo/sub"
    assert body["query"] == "a=1&fal_jwt_token=***"
    assert body["headers"]["authorization"] == "Key ***"
    assert body["headers"]["x-fal-queue-priority"] == "low"
    assert body["body"] == '{"x": 1}'
    assert body["authorized"] is True
    assert KEY not in response.text and "secret-token" not in response.text
    recorded = (await stats(fal))["last_request"]
    assert recorded["headers"]["authorization"] == "Key ***"
    assert recorded["authorized"] is True
    assert KEY not in json.dumps(recorded)


async def test_stall_gives_up_when_the_client_leaves(fal: httpx.AsyncClient) -> None:
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await fal.post("/run/fake/stall?seconds=5", json={}, timeout=0.2)
    assert time.monotonic() - started < 1


# --- /stream --------------------------------------------------------------------------


async def test_stream_sends_progress_then_the_output(fal: httpx.AsyncClient) -> None:
    payload = {"prompt": "a dog"}
    async with fal.stream("POST", "/run/fake/image/stream", json=payload) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for _, line in sse_events(response)]
    events = [json.loads(line.removeprefix("data: ")) for line in lines]
    assert [e.get("progress") for e in events[:3]] == [0.25, 0.5, 0.75]
    assert len(events) == 4
    assert events[-1] == (await fal.post("/run/fake/image", json=payload)).json()


async def test_stream_garbage_emits_a_non_json_data_line(fal: httpx.AsyncClient) -> None:
    async with fal.stream("POST", "/run/fake/stream-garbage/stream", json={"prompt": "x"}) as r:
        lines = [line async for _, line in sse_events(r)]
    payloads = [line.removeprefix("data: ") for line in lines]
    broken = [p for p in payloads if not p.startswith("{")]
    assert len(broken) == 1


async def test_stream_writes_each_event_in_one_body_message() -> None:
    """At the ASGI level: every SSE event is exactly one ``http.response.body`` message."""
    app = create_fake_app(speed=0)
    body = json.dumps({"prompt": "x"}).encode()
    messages: list[dict[str, Any]] = []
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError

    async def send(message: Any) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/run/fake/image/stream",
        "raw_path": b"/run/fake/image/stream",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"fake"), (b"authorization", b"Key k")],
        "client": ("127.0.0.1", 1),
        "server": ("fake", 80),
    }
    await app(scope, receive, send)
    chunks = [m["body"] for m in messages if m["type"] == "http.response.body" and m["body"]]
    assert len(chunks) == 4
    assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in chunks)
    assert all(c.count(b"\n\n") == 1 for c in chunks)


async def test_client_disconnect_mid_stream_is_counted(fal: httpx.AsyncClient) -> None:
    await fal.post("/__fake__/reset")
    async with fal.stream("GET", "/run/fake/slow-stream?events=20&interval=0.2") as response:
        async for _, line in sse_events(response):
            assert json.loads(line.removeprefix("data: ")) == {"i": 0}
            break
        assert (await stats(fal))["open_streams"] == 1
    after = await wait_for_stats(fal, open_streams=0, disconnected_streams=1)
    assert after["closed_streams"] == 1


async def test_a_finished_stream_is_not_counted_as_disconnected(fal: httpx.AsyncClient) -> None:
    await fal.post("/__fake__/reset")
    response = await fal.get("/run/fake/slow-stream?events=3&interval=0.01")
    assert response.text.count("data: ") == 3
    await wait_for_stats(fal, open_streams=0, closed_streams=1, disconnected_streams=0)


# --- queue ----------------------------------------------------------------------------


async def test_submit_answers_public_queue_urls_and_records_headers(
    fal: httpx.AsyncClient,
) -> None:
    headers = {"x-fal-queue-priority": "low", "x-fal-request-timeout": "30.0"}
    response = await fal.post(
        "/queue/workflows/acme/painter/v2?fal_webhook=https%3A%2F%2Fexample.com%2Fhook",
        json={"prompt": "x"},
        headers=headers,
    )
    body = response.json()
    rid = body["request_id"]
    assert response.headers["x-fal-request-id"] == rid
    base = f"https://queue.fal.run/workflows/acme/painter/requests/{rid}"
    assert body["response_url"] == base
    assert body["status_url"] == f"{base}/status"
    assert body["cancel_url"] == f"{base}/cancel"
    assert (body["status"], body["queue_position"]) == ("IN_QUEUE", 2)
    submits = (await stats(fal))["submits"]
    assert submits[-1]["request_id"] == rid
    assert submits[-1]["headers"] == headers
    assert submits[-1]["webhook"] == "https://example.com/hook"


@pytest.mark.parametrize("timeout", ["abc", "1", "0.5", "-3", "nan"])
async def test_submit_rejects_bad_request_timeouts(fal: httpx.AsyncClient, timeout: str) -> None:
    response = await fal.post(
        "/queue/fake/image", json={"prompt": "x"}, headers={"x-fal-request-timeout": timeout}
    )
    assert response.status_code == 400
    assert response.json()["error_type"] == "bad_request"
    assert response.headers["x-fal-error-type"] == "bad_request"


async def test_polling_walks_queue_progress_and_completion(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fal-ai/flux/dev", image_size="square")
    seen = await poll_until_completed(fal, submitted["status_url"])
    bodies = [r.json() for r in seen]
    order = {"IN_QUEUE": 0, "IN_PROGRESS": 1, "COMPLETED": 2}
    statuses = [b["status"] for b in bodies]
    # Timing-based: a loaded machine may skip states, never reorder them (exact steps are
    # pinned by the speed=0 tests).
    assert statuses == sorted(statuses, key=order.__getitem__)
    positions = [b["queue_position"] for b in bodies if b["status"] == "IN_QUEUE"]
    assert positions == sorted(positions, reverse=True) and all(p <= 2 for p in positions)
    running = [r for r in seen if r.json()["status"] == "IN_PROGRESS"]
    assert all(r.status_code == 202 for r in running)
    log_counts = [len(r.json()["logs"]) for r in running]
    assert log_counts == sorted(log_counts)
    done = seen[-1]
    assert done.status_code == 200
    assert len(done.json()["logs"]) == 6
    assert done.json()["metrics"]["inference_time"] > 0
    assert set(done.json()["logs"][0]) == {"message", "level", "source", "timestamp"}
    result = await fal.get(local(submitted["response_url"]))
    assert result.status_code == 200
    assert result.headers["x-fal-request-id"] == submitted["request_id"]
    assert result.json()["images"][0]["width"] == 512


async def test_status_without_logs_has_null_logs(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fake/image")
    await asyncio.sleep(1.2 * SPEED)  # into IN_PROGRESS
    body = (await fal.get(local(submitted["status_url"]), params={"logs": "false"})).json()
    assert body["status"] == "IN_PROGRESS"
    assert body["logs"] is None


async def test_result_before_completion_and_cancellation(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fake/slow")
    early = await fal.get(local(submitted["response_url"]))
    assert (early.status_code, early.json()) == (400, {"detail": "Request is still in progress"})
    cancel = await fal.put(local(submitted["cancel_url"]))
    assert (cancel.status_code, cancel.json()) == (202, {"status": "CANCELLATION_REQUESTED"})
    status = await fal.get(local(submitted["status_url"]))
    assert status.status_code == 200
    assert status.json()["status"] == "COMPLETED"
    assert status.json()["error_type"] == "client_cancelled"
    again = await fal.put(local(submitted["cancel_url"]))
    assert (again.status_code, again.json()) == (400, {"status": "ALREADY_COMPLETED"})
    result = await fal.get(local(submitted["response_url"]))
    assert result.json()["error_type"] == "client_cancelled"
    unknown = await fal.put(f"/queue/fake/slow/requests/{uuid.uuid4()}/cancel")
    assert (unknown.status_code, unknown.json()) == (404, {"status": "NOT_FOUND"})


async def test_failed_runs_complete_with_their_error(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fake/fail-500")
    done = (await poll_until_completed(fal, submitted["status_url"]))[-1].json()
    assert (done["error_type"], done["error"]) == ("internal_error", "Internal server error")
    result = await fal.get(local(submitted["response_url"]))
    assert result.status_code == 500
    assert result.headers["x-fal-error-type"] == "internal_error"


async def test_queue_address_errors(fal: httpx.AsyncClient) -> None:
    rid = (await submit(fal, "fal-ai/flux/dev"))["request_id"]
    with_path = await fal.get(f"/queue/fal-ai/flux/dev/requests/{rid}/status")
    assert with_path.status_code == 405
    assert (await fal.get(f"/queue/fal-ai/flux/requests/{uuid.uuid4()}/status")).status_code == 404
    assert (await fal.get(f"/queue/fal-ai/other/requests/{rid}/status")).status_code == 404


async def test_status_stream_sends_each_change_then_closes(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fake/image")
    url = local(submitted["status_url"]) + "/stream"
    async with fal.stream("GET", url, params={"logs": "1"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        received = [(t, line) async for t, line in sse_events(response)]
    events = [json.loads(line.removeprefix("data: ")) for _, line in received]
    # A loaded machine may coalesce changes into one event, never repeat or reorder them.
    order = {"IN_QUEUE": 0, "IN_PROGRESS": 1, "COMPLETED": 2}
    statuses = [e["status"] for e in events]
    assert statuses == sorted(statuses, key=order.__getitem__)
    assert statuses.count("COMPLETED") == 1 and statuses[-1] == "COMPLETED"
    positions = [e["queue_position"] for e in events if e["status"] == "IN_QUEUE"]
    assert positions == sorted(set(positions), reverse=True)
    assert sum(len(e.get("logs") or []) for e in events) == 6  # only new lines, once each
    assert "metrics" in events[-1]
    assert len(received) >= 2


async def test_status_stream_of_a_finished_request_is_one_event(fal: httpx.AsyncClient) -> None:
    submitted = await submit(fal, "fake/image")
    await poll_until_completed(fal, submitted["status_url"])
    async with fal.stream("GET", local(submitted["status_url"]) + "/stream") as response:
        lines = [line async for _, line in sse_events(response)]
    assert len(lines) == 1
    assert json.loads(lines[0].removeprefix("data: "))["logs"] is None


async def test_status_stream_keeps_alive_and_counts_disconnects(fal: httpx.AsyncClient) -> None:
    await fal.post("/__fake__/reset")
    submitted = await submit(fal, "fake/never-completes")
    url = local(submitted["status_url"]) + "/stream"
    async with fal.stream("GET", url) as response:
        async for _, line in sse_events(response):
            if line.startswith(":"):
                assert line == ": keep-alive"
                break
    await wait_for_stats(fal, open_streams=0, disconnected_streams=1)


# --- tokens ---------------------------------------------------------------------------


def jwt_payload(token: str) -> dict[str, Any]:
    _header, payload, signature = token.split(".")
    assert signature
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return decoded


async def test_tokens_are_jwts_accepted_for_their_aliases_only(
    fal: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    body = {"allowed_apps": ["image"], "token_expiration": 120}
    minted = await fal.post("/rest/tokens/", json=body)
    assert minted.status_code == 200
    token = minted.json()
    assert isinstance(token, str)
    claims = jwt_payload(token)
    assert claims["allowed_apps"] == ["image"] and claims["exp"] > time.time()
    ok = await anon.post(
        "/run/fake/image/stream", params={"fal_jwt_token": token}, json={"prompt": "x"}
    )
    assert ok.status_code == 200
    foreign = await anon.post("/run/fake/echo", params={"fal_jwt_token": token}, json={})
    assert foreign.status_code == 401
    forged = await anon.post("/run/fake/image", params={"fal_jwt_token": token + "x"}, json={})
    assert forged.status_code == 401
    rest = await anon.post("/rest/tokens/", params={"fal_jwt_token": token}, json=body)
    assert rest.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"allowed_apps": [], "token_expiration": 120},
        {"allowed_apps": "image", "token_expiration": 120},
        {"allowed_apps": ["image"], "token_expiration": "120"},
        {"allowed_apps": ["image"]},
    ],
)
async def test_token_requests_are_validated(fal: httpx.AsyncClient, body: object) -> None:
    assert (await fal.post("/rest/tokens/", json=body)).status_code == 422


# --- storage --------------------------------------------------------------------------


async def test_single_upload_and_download(fal: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    init = await fal.post(
        "/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
        json={"content_type": "text/plain", "file_name": "note.txt"},
    )
    urls = init.json()
    assert urls["file_url"].endswith("/note.txt")
    wrong = await anon.put(urls["upload_url"] + "x", content=b"nope")
    assert wrong.status_code == 403
    put = await anon.put(
        urls["upload_url"], content=b"hello", headers={"content-type": "text/plain"}
    )
    assert (put.status_code, put.json()) == (200, {})
    reused = await anon.put(urls["upload_url"], content=b"again")
    assert reused.status_code == 403
    got = await anon.get(urls["file_url"])
    assert (got.status_code, got.content) == (200, b"hello")
    assert got.headers["content-type"] == "text/plain"
    assert got.headers["access-control-allow-origin"] == "*"
    assert (await anon.get(urls["file_url"] + "x")).status_code == 404


async def test_initiate_checks_storage_type_and_key(
    fal: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    body = {"content_type": "image/png", "file_name": "a.png"}
    bad = await fal.post("/rest/storage/upload/initiate?storage_type=gcs", json=body)
    assert bad.status_code == 400
    keyless = await anon.post("/rest/storage/upload/initiate?storage_type=fal-cdn-v3", json=body)
    assert keyless.status_code == 401


async def test_multipart_upload(fal: httpx.AsyncClient, anon: httpx.AsyncClient) -> None:
    init = await fal.post(
        "/rest/storage/upload/initiate-multipart?storage_type=fal-cdn-v3",
        json={"content_type": "application/octet-stream", "file_name": "big.bin"},
    )
    urls = init.json()
    upload = httpx.URL(urls["upload_url"])
    parts = [b"a" * 1000, b"b" * 1000, b"c" * 10]
    listed = []
    for number, data in enumerate(parts, start=1):
        response = await anon.put(upload.copy_with(path=f"{upload.path}/{number}"), content=data)
        etag = f'"{hashlib.md5(data).hexdigest()}"'
        assert response.json() == {"partNumber": number, "etag": etag}
        assert response.headers["etag"] == etag
        listed.append(response.json())
    complete = upload.copy_with(path=f"{upload.path}/complete")
    tampered = [listed[0], {**listed[1], "etag": '"0"'}, listed[2]]
    assert (await anon.post(complete, json={"parts": tampered})).status_code == 400
    assert (await anon.post(complete, json={"parts": listed[::-1]})).status_code == 400
    assert (await anon.post(complete, json={"parts": listed})).status_code == 200
    assert (await anon.get(urls["file_url"])).content == b"".join(parts)


async def test_cors_preflight_on_upload_urls(anon: httpx.AsyncClient) -> None:
    response = await anon.options(
        "/cdn/uploads/abc?token=t",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "PUT",
            "access-control-request-headers": "content-type, x-fal-foo, x-other",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, POST, PUT"
    assert response.headers["access-control-allow-headers"] == "content-type, x-fal-foo"


# --- images ---------------------------------------------------------------------------


async def test_image_urls_serve_decodable_pngs_of_the_right_size(
    fal: httpx.AsyncClient, anon: httpx.AsyncClient
) -> None:
    size = {"width": 33, "height": 17}
    output = (await fal.post("/run/fake/image", json={"prompt": "x", "image_size": size})).json()
    image = output["images"][0]
    download = await anon.get(image["url"])
    assert download.headers["content-type"] == "image/png"
    assert png_size(download.content) == (33, 17)
    assert len(download.content) == image["file_size"]


# --- other settings -------------------------------------------------------------------


async def test_speed_zero_advances_one_state_per_status_call() -> None:
    with serve(create_fake_app(speed=0)) as base:
        async with httpx.AsyncClient(
            base_url=base, headers={"authorization": "Key any"}, verify=TLS
        ) as fal:
            submitted = await submit(fal, "fake/image")
            status_path = local(submitted["status_url"])
            early = await fal.get(local(submitted["response_url"]))
            assert early.status_code == 400
            walk = [(await fal.get(status_path)).json()["status"] for _ in range(4)]
            assert walk == ["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "COMPLETED"]
            assert (await fal.get(local(submitted["response_url"]))).status_code == 200


async def test_self_urls_follow_the_mount_prefix() -> None:
    outer = Starlette(routes=[Mount("/_fake", app=create_fake_app(speed=0))])
    with serve(outer) as base:
        async with httpx.AsyncClient(
            base_url=base, headers={"authorization": "Key any"}, verify=TLS
        ) as fal:
            output = await fal.post("/_fake/run/fake/image", json={"prompt": "x"})
            url = output.json()["images"][0]["url"]
            assert url.startswith(f"{base}/_fake/cdn/images/")
            assert png_size((await fal.get(url)).content) == (1024, 768)


async def test_public_url_overrides_self_links() -> None:
    app = create_fake_app(speed=0, public_url="https://fake.example/base/")
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": "Key any"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://x", headers=headers, verify=TLS
    ) as c:
        init = await c.post(
            "/rest/storage/upload/initiate?storage_type=fal-cdn-v3",
            json={"content_type": "image/png", "file_name": "a.png"},
        )
    assert init.json()["upload_url"].startswith("https://fake.example/base/cdn/uploads/")
