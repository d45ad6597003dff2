"""The proxy over an HTTPS upstream: FALPROXY_UPSTREAM_CA_FILE is the trust, failures are 502.

A real uvicorn-served FalProxy, a raw TLS upstream signed by a CA made at run time
(tests/support/tls.py), and a plain HTTP client: the setting decides which CA is trusted,
and an untrusted or misnamed certificate is a 502 with a JSON detail, with not one request
byte sent to the upstream.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from falproxy import ConfigError, FalCredential, FalProxy, ProxyConfig
from tests.conftest import serve
from tests.support.scripted_upstream import Received, response, scripted_upstream
from tests.support.tls import make_pki

KEY = "tls-key-id:tls-key-secret"
TARGET = "https://queue.fal.run/fal-ai/flux/requests/abc/status"


async def ok(received: Received, writer: asyncio.StreamWriter) -> bool:
    writer.write(response("200 OK", b'{"status": "COMPLETED"}', "content-type: application/json"))
    return True


def call_through(config: ProxyConfig) -> httpx.Response:
    with serve(FalProxy(config)) as proxy_url:
        return httpx.get(
            f"{proxy_url}/api/fal/proxy", headers={"x-fal-target-url": TARGET}, timeout=10
        )


def proxy_config(port: int, ca_file: Path | None) -> ProxyConfig:
    return ProxyConfig(
        credential=FalCredential(KEY),
        upstreams={"queue.fal.run": f"https://127.0.0.1:{port}"},
        upstream_ca_file=None if ca_file is None else str(ca_file),
    )


def test_the_configured_ca_is_trusted_and_the_key_reaches_the_upstream(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with scripted_upstream(ok, tls=pki.server_context()) as upstream:
        answer = call_through(proxy_config(upstream.port, pki.ca))
    assert answer.status_code == 200 and answer.json() == {"status": "COMPLETED"}
    (received,) = upstream.requests
    assert b"\r\nauthorization: Key tls-key-id:tls-key-secret\r\n" in received.head


@pytest.mark.parametrize("failure", ["untrusted", "system store", "wrong name"])
def test_a_certificate_failure_is_a_502_and_nothing_is_sent(tmp_path: Path, failure: str) -> None:
    names = ("upstream.example.test",) if failure == "wrong name" else ("127.0.0.1",)
    pki = make_pki(tmp_path / "server", names=names)
    trusted = {
        "untrusted": make_pki(tmp_path / "other").ca,
        "system store": None,
        "wrong name": pki.ca,
    }[failure]
    with scripted_upstream(ok, tls=pki.server_context()) as upstream:
        answer = call_through(proxy_config(upstream.port, trusted))
    assert answer.status_code == 502
    assert answer.json() == {"detail": "The fal API could not be reached"}
    assert upstream.raw_bytes == 0 and upstream.requests == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [(None, "names no readable file"), (b"not a certificate\n", "is not a PEM CA bundle")],
)
def test_a_bad_ca_file_stops_start_up_naming_the_variable(
    tmp_path: Path, content: bytes | None, problem: str
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        ProxyConfig.from_env({"FAL_KEY": KEY, "FALPROXY_UPSTREAM_CA_FILE": str(path)})
    message = str(caught.value)
    assert message.startswith(f"FALPROXY_UPSTREAM_CA_FILE {problem}")
    assert "\n" not in message and KEY not in message
