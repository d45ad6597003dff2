"""A ``wss`` upstream trusts exactly ``FALPROXY_UPSTREAM_CA_FILE`` (issue 18, review item 1).

The fake fal served over TLS with a certificate from a CA made at run time
(tests/support/tls.py), the proxy configured from the environment as an operator would:
with that CA a relayed socket works; with another CA (or none: the system store) the
handshake is refused with 502 before the upgrade, and the fake never sees a session.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from falproxy import FalProxy, ProxyConfig
from falproxy.fake import create_fake_app
from tests.conftest import TEST_KEY, serve
from tests.support.tls import Pki, make_pki
from tests.support.ws_helpers import pack, refusal, relay_url, unpack


class TlsFake:
    """The fake fal over HTTPS (and so WSS), and its introspection endpoints."""

    def __init__(self, url: str, pki: Pki) -> None:
        self.url, self.pki = url, pki

    def realtime(self) -> dict[str, Any]:
        stats: dict[str, Any] = httpx.get(
            f"{self.url}/__fake__/realtime", verify=self._tls()
        ).json()
        return stats

    def reset(self) -> None:
        httpx.post(f"{self.url}/__fake__/realtime/reset", verify=self._tls()).raise_for_status()

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.pki.ca)


@pytest.fixture(scope="module")
def tls_fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFake]:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    fake = create_fake_app(expected_key=TEST_KEY)
    with serve(fake, ssl_certfile=str(pki.cert), ssl_keyfile=str(pki.key)) as url:
        served = TlsFake("https://" + url.removeprefix("http://"), pki)
        served.reset()
        yield served


def proxy_for(tls_fake: TlsFake, ca_file: Path | None) -> FalProxy:
    env = {"FAL_KEY": TEST_KEY, "FALPROXY_UPSTREAMS": f"fal.run={tls_fake.url}/run"}
    if ca_file is not None:
        env["FALPROXY_UPSTREAM_CA_FILE"] = str(ca_file)
    return FalProxy(ProxyConfig.from_env(env))


def test_the_configured_ca_is_trusted_for_the_socket(tls_fake: TlsFake) -> None:
    tls_fake.reset()
    with serve(proxy_for(tls_fake, tls_fake.pki.ca)) as proxy, connect(relay_url(proxy)) as ws:
        ws.send(pack({"prompt": "over tls", "request_id": "tls"}))
        assert unpack(ws.recv(timeout=10))["request_id"] == "tls"
    session = tls_fake.realtime()["sessions"][-1]
    assert session["auth"] == "key" and session["headers"]["authorization"] == "Key ***"


@pytest.mark.parametrize("trust", ["another CA", "system store"])
def test_an_untrusted_certificate_is_a_502_before_the_upgrade(
    tls_fake: TlsFake, tmp_path: Path, trust: str
) -> None:
    tls_fake.reset()
    ca_file = make_pki(tmp_path).ca if trust == "another CA" else None
    with serve(proxy_for(tls_fake, ca_file)) as proxy:
        status, body = refusal(relay_url(proxy))
    assert status == 502 and body["detail"]
    assert TEST_KEY not in str(body)
    assert tls_fake.realtime()["opened"] == 0, "the handshake reached the upstream"


def test_proxy_environment_variables_are_never_honoured(
    tls_fake: TlsFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key goes to fal directly: a proxy named in the environment is not used (and
    here, one that does not exist, would make every socket fail)."""
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("https_proxy", "wss_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    with (
        serve(proxy_for(tls_fake, tls_fake.pki.ca)) as proxy,
        connect(relay_url(proxy), proxy=None) as ws,  # the test's own client goes direct too
    ):
        ws.send(pack({"prompt": "direct"}))
        assert unpack(ws.recv(timeout=10))["images"]
