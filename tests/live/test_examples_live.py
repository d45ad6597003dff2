"""Every framework example, under every server its docs name, in front of the fake fal.

The WebSocket relay through FastAPI, Starlette and Django ASGI, and the rest of the
contract every front end keeps (auth, limits, CORS, timeouts, ops endpoints), are in
tests/contract.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TEST_KEY_SECRET
from tests.support.examples_server import SERVERS, documented_env, run_example
from tests.support.live import JSON, ROUTE, assert_no_key, target
from tests.support.live import wait_until as wait_for
from tests.support.ports import free_port
from tests.support.procs import falproxy_fake

# The live proxy tests' helpers: same route, same header and secret checks.


@pytest.fixture(scope="module", params=sorted(SERVERS))
def example_url(request: pytest.FixtureRequest, fake_url: str) -> Iterator[str]:
    with run_example(request.param, fake_url) as url:
        yield url


@pytest.fixture
def client(example_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=example_url, timeout=30) as http:
        yield http


def test_index_page(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert f'fal.config({{ proxyUrl: "{ROUTE}" }})' in response.text


def test_sync_run(client: httpx.Client) -> None:
    response = client.post(
        ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={"prompt": "a fox"}
    )
    assert response.status_code == 200
    assert response.headers["x-fal-request-id"]
    assert response.json()["images"][0]["url"]
    assert_no_key(response)


def test_queue_submit_status_result(client: httpx.Client) -> None:
    submitted = client.post(
        ROUTE, headers=target("https://queue.fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
    )
    assert submitted.status_code == 200
    assert_no_key(submitted)
    body = submitted.json()
    deadline = time.monotonic() + 15
    while True:
        status = client.get(ROUTE, headers=target(body["status_url"]))
        assert status.status_code in (200, 202)
        assert_no_key(status)
        if status.json()["status"] == "COMPLETED":
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    result = client.get(ROUTE, headers=target(body["response_url"]))
    assert result.status_code == 200
    assert result.json()["images"]
    assert_no_key(result)


def test_sse_arrives_event_by_event(client: httpx.Client) -> None:
    # gzip accepted, as browsers do: Django's GZipMiddleware must not hold events back.
    url = "https://fal.run/fake/slow-stream?events=4&interval=0.5"
    started = time.monotonic()
    arrivals = []
    headers = target(url, **{"accept-encoding": "gzip"})
    with client.stream("POST", ROUTE, headers=headers, json={}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in response.headers
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data:"):
                arrivals.append(time.monotonic() - started)
        assert all(TEST_KEY_SECRET not in value for value in response.headers.values())
    assert TEST_KEY_SECRET not in "\n".join(lines)
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] > 1.2
    assert arrivals[0] < 0.8, "the first event was held back"


def test_chunked_request_body_arrives(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": '
        yield b'"chunked"}'

    response = client.post(ROUTE, headers=target("https://fal.run/fake/echo"), content=chunks())
    assert response.status_code == 200
    echo = response.json()
    assert json.loads(echo["body"]) == {"prompt": "chunked"}
    assert echo["headers"]["authorization"] == "Key ***"
    assert "x-fal-target-url" not in echo["headers"]


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("POST", "https://evil.example/fal-ai/flux/dev", 412),
        ("POST", "https://fal.run/other-org/model", 403),  # outside FALPROXY_ALLOWED_ENDPOINTS
        ("PATCH", "https://fal.run/fal-ai/flux/dev", 405),
        ("GET", None, 400),
    ],
)
def test_refusals(
    client: httpx.Client, fake: httpx.Client, method: str, url: str | None, status: int
) -> None:
    before = fake.get("/__fake__/stats").json()["requests"]
    headers = target(url) if url else JSON
    response = client.request(method, ROUTE, headers=headers, content=b"{}")
    assert response.status_code == status
    assert isinstance(response.json()["detail"], str)
    assert_no_key(response)
    assert fake.get("/__fake__/stats").json()["requests"] == before, "a refused call was forwarded"


def test_client_disconnect_closes_upstream(client: httpx.Client, fake: httpx.Client) -> None:
    url = "https://fal.run/fake/slow-stream?events=200&interval=0.1"
    with client.stream("POST", ROUTE, headers=target(url), json={}) as response:
        lines = response.iter_lines()  # kept: closing it would close the connection
        assert next(line for line in lines if line.startswith("data:"))
        assert fake.get("/__fake__/stats").json()["open_streams"] == 1
    # Leaving the block closes our connection mid-stream.
    wait_for(lambda: fake.get("/__fake__/stats").json()["open_streams"] == 0, timeout=10)
    stats = fake.get("/__fake__/stats").json()
    assert stats["disconnected_streams"] >= 1


@pytest.mark.parametrize("name", ["django-uvicorn", "fastapi-uvicorn"])
def test_asgi_examples_give_the_proxy_its_lifespan(fake_url: str, name: str) -> None:
    """Django refuses lifespan and a mount never gets one: the helpers pass it on."""
    output: list[str] = []
    with run_example(name, fake_url, output_sink=output):
        pass
    assert "upstream mapped: fal.run ->" in output[0]
    assert "lifespan" not in output[0].lower() or "unsupported" not in output[0].lower()


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_example_runs_against_the_fake_with_one_variable(name: str) -> None:
    """The docstrings' commands: `falproxy fake --port N`, then FALPROXY_FAKE_URL only."""
    output: list[str] = []
    with falproxy_fake(free_port(), "--speed", "0.05") as fake:
        env = documented_env(FALPROXY_FAKE_URL=fake)
        with (
            run_example(name, fake, env=env, output_sink=output) as url,
            httpx.Client(base_url=url, timeout=30) as http,
        ):
            assert http.get("/").status_code == 200
            response = http.post(
                ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={"prompt": "x"}
            )
            assert response.status_code == 200, response.text
            assert response.json()["images"][0]["url"].startswith(fake)
    assert f"FAKE MODE: every fal call is answered by the fake fal at {fake}" in output[0]
