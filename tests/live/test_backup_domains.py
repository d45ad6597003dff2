"""fal's backup domains (issue 20, part 3) through a real ``falproxy serve``.

fal.run (or queue.fal.run) is mapped to a closed port and its backup domain to the fake,
as ``--upstream`` users would map them: a call that cannot reach the primary at all goes
to the backup, visibly (event, access line, metric); one whose bytes reached the primary
never does; a client can never name a backup domain itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from falproxy.core.targets import Target, parse_target
from falproxy.core.upstreams import UpstreamMap
from tests.support.faulty_upstream import closed_port
from tests.support.live import wait_until
from tests.support.metrics import parse
from tests.support.ports import free_port
from tests.support.procs import Served, falproxy_serve, proxy_env
from tests.support.scripted_upstream import Received, scripted_upstream

ROUTE = "/api/fal/proxy"
RUN = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev"}
QUEUE = {"x-fal-target-url": "https://queue.fal.run/fal-ai/flux/dev"}


@contextmanager
def serve(upstreams: dict[str, str], fake_url: str, **env: str) -> Iterator[tuple[str, Served]]:
    variables = proxy_env(fake_url, **env)
    variables["FALPROXY_UPSTREAMS"] = ",".join(f"{h}={u}" for h, u in upstreams.items())
    port = free_port()
    with falproxy_serve(variables, port) as served:
        yield f"http://127.0.0.1:{port}", served


def test_an_unreachable_fal_run_falls_back_to_the_backup_domain(fake_url: str) -> None:
    closed = f"http://127.0.0.1:{closed_port()}"
    upstreams = {
        "fal.run": f"{closed}/run",
        "queue.fal.run": f"{closed}/queue",
        "falrun.com": f"{fake_url}/run",
        "queue.falrun.com": f"{fake_url}/queue",
    }
    with serve(upstreams, fake_url) as (base, served), httpx.Client(base_url=base) as client:
        run = client.post(ROUTE, headers=RUN, json={"prompt": "a lighthouse"})
        assert run.status_code == 200 and run.json()["images"]
        submit = client.post(ROUTE, headers=QUEUE, json={"prompt": "a lighthouse"})
        assert submit.status_code == 200 and submit.json()["request_id"]
        wait_until(lambda: served.stderr().count("backup_domain=yes") == 2)
        assert served.stderr().count("sending the call to fal's backup domain at 127.0.0.1") == 2
        metrics = parse(client.get("/metrics").text)
        assert metrics[("falproxy_upstream_backup_calls_total", frozenset({("kind", "http")}))] == 2


def test_the_backup_is_never_used_once_a_request_byte_was_sent(fake_url: str) -> None:
    backup_hits: list[Received] = []

    async def drops(received: Received, writer: asyncio.StreamWriter) -> bool:
        return False  # read the whole POST, then close without answering

    async def backup(received: Received, writer: asyncio.StreamWriter) -> bool:
        backup_hits.append(received)
        return False

    with scripted_upstream(drops) as primary, scripted_upstream(backup) as secondary:
        upstreams = {
            "fal.run": f"http://127.0.0.1:{primary.port}",
            "falrun.com": f"http://127.0.0.1:{secondary.port}",
        }
        with serve(upstreams, fake_url) as (base, _), httpx.Client(base_url=base) as client:
            answer = client.post(ROUTE, headers=RUN, json={"prompt": "x"})
        assert answer.status_code == 502
        assert len(primary.requests) == 1 and backup_hits == []


def test_backup_domains_can_be_turned_off(fake_url: str) -> None:
    upstreams = {"fal.run": f"http://127.0.0.1:{closed_port()}", "falrun.com": f"{fake_url}/run"}
    with (
        serve(upstreams, fake_url, FALPROXY_BACKUP_DOMAINS="false") as (base, served),
        httpx.Client(base_url=base) as client,
    ):
        assert client.post(ROUTE, headers=RUN, json={}).status_code == 502
        wait_until(lambda: "connection refused" in served.stderr())
        assert "backup domain" not in served.stderr()


@pytest.mark.parametrize("host", ["falrun.com", "queue.falrun.com"])
def test_a_client_cannot_name_a_backup_domain(host: str, fake_url: str) -> None:
    with serve({}, fake_url) as (base, _), httpx.Client(base_url=base) as client:
        target = {"x-fal-target-url": f"https://{host}/fal-ai/flux/dev"}
        answer = client.post(ROUTE, headers=target, json={})
    assert answer.status_code == 412


def _target(url: str) -> Target:
    return parse_target(url)


def test_backup_urls_keep_path_and_query_and_follow_mappings() -> None:
    plain = UpstreamMap({})
    assert (
        plain.backup_url_for(_target("https://queue.fal.run/fal-ai/flux/requests/r1/status?logs=1"))
        == "https://queue.falrun.com/fal-ai/flux/requests/r1/status?logs=1"
    )
    assert plain.backup_url_for(_target("https://rest.fal.ai/tokens/")) is None
    mapped = UpstreamMap({"falrun.com": "http://127.0.0.1:9/run"})
    assert mapped.backup_url_for(_target("https://fal.run/a/b")) == "http://127.0.0.1:9/run/a/b"
    # A primary mapped to a fake has no backup of its own: never the real fal instead.
    local = UpstreamMap({"fal.run": "http://127.0.0.1:9/run"})
    assert local.backup_url_for(_target("https://fal.run/a/b")) is None
