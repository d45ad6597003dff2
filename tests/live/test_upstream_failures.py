"""Upstream failures seen from ``falproxy serve``: never a double send, always a cause.

* A POST that fal read on a kept-alive connection which then died unanswered is a 502,
  delivered once (issue 18 hole 1: it used to be sent again, and billed twice).
* Every 502 and 504 logs one warning naming its cause — name resolution (which host),
  refused, timeout (which phase) — and never the key (issue 19 item 5).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.conftest import TEST_KEY_SECRET
from tests.support.faulty_upstream import closed_port
from tests.support.live import wait_until
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env
from tests.support.scripted_upstream import Received, response, scripted_upstream

OK = response("200 OK", b'{"ok": true}', "content-type: application/json")
TARGET = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev"}


def _serve_with(upstream: str, fake_url: str, *, server: str = "native", **env: str):  # type: ignore[no-untyped-def]
    variables = proxy_env(fake_url, **env)
    variables["FALPROXY_UPSTREAMS"] = f"fal.run={upstream}"
    return falproxy_serve(variables, free_port(), "--server", server)


@pytest.mark.parametrize("server", ["native", "asgi"])
def test_a_post_fal_read_before_the_connection_died_is_delivered_once(
    server: str, fake_url: str
) -> None:
    seen: list[Received] = []

    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        seen.append(received)
        if len([r for r in seen if r.connection == received.connection]) == 1:
            writer.write(OK)  # the first call of a connection is answered and kept alive
            return True
        await asyncio.sleep(0.3)  # works on the second, then drops the connection
        return False

    with (
        scripted_upstream(answer) as upstream,
        _serve_with(f"http://127.0.0.1:{upstream.port}", fake_url, server=server) as served,
    ):
        with httpx.Client(base_url=served_url(served), timeout=10) as client:
            assert client.post("/api/fal/proxy", headers=TARGET, json={}).status_code == 200
            second = client.post("/api/fal/proxy", headers=TARGET, json={"prompt": "x"})
        assert second.status_code == 502
        assert second.json()["detail"] == "The fal API could not be reached"
        posts = [r for r in seen if r.head.startswith(b"POST")]
        assert len(posts) == 2  # the first call, and the second exactly once
        wait_until(lambda: "never sent twice" in served.stderr())


def served_url(served: object) -> str:
    command = served.process.args  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{command[command.index('--port') + 1]}"


@pytest.mark.parametrize(
    ("upstream", "cause"),
    [
        ("http://no-such-host.invalid", "name resolution failed for no-such-host.invalid"),
        ("http://127.0.0.1:{closed}", "connection refused by 127.0.0.1:{closed}"),
    ],
)
def test_every_502_logs_its_cause_and_never_the_key(
    upstream: str, cause: str, fake_url: str
) -> None:
    closed = closed_port()
    with _serve_with(upstream.format(closed=closed), fake_url) as served:
        with httpx.Client(base_url=served_url(served), timeout=30) as client:
            answer = client.post("/api/fal/proxy", headers=TARGET, json={})
        assert answer.status_code == 502
        wait_until(lambda: cause.format(closed=closed) in served.stderr())
        log = served.stderr()
    assert log.count("The fal API could not be reached (502)") == 1
    assert TEST_KEY_SECRET not in log


def test_a_504_names_the_phase_that_timed_out(fake_url: str) -> None:
    async def silent(received: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    with scripted_upstream(silent) as upstream:
        url = f"http://127.0.0.1:{upstream.port}"
        with _serve_with(url, fake_url, FALPROXY_UPSTREAM_TIMEOUT="0.5") as served:
            with httpx.Client(base_url=served_url(served), timeout=30) as client:
                answer = client.post("/api/fal/proxy", headers=TARGET, json={})
            assert answer.status_code == 504
            expected = f"timed out waiting for the response head of 127.0.0.1:{upstream.port}"
            wait_until(lambda: expected in served.stderr())
