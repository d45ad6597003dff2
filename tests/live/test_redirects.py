"""Redirects from the upstream are never followed, on every transport (issue 12 item 4).

A hostile upstream answers 3xx to a path of its own (the key would be resent to a path
the policy never checked) or to another server (outside the allow-list). The second
server counts every TCP connection: it must see none.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from flask import Flask
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import connect

from falproxy import FalProxy
from falproxy.integrations.flask import register_fal_proxy
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import serve
from tests.support.hostile_upstream import (
    RecordingUpstream,
    accept_websocket,
    config_for,
    redirect,
)
from tests.support.ws_helpers import ROUTE, relay_url
from tests.support.wsgi_server import serve_wsgi

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:websockets.legacy")

FLUX = "https://fal.run/fal-ai/flux/dev"


@pytest.fixture
def elsewhere() -> Iterator[RecordingUpstream]:
    """The redirect target: a server that would accept anything, and must see nothing."""
    with RecordingUpstream(accept_websocket).running() as server:
        yield server


def locations(elsewhere: RecordingUpstream, scheme: str) -> list[str]:
    return ["/elsewhere", f"{scheme}://127.0.0.1:{elsewhere.port}/fal-ai/flux/dev"]


def refused_handshake(upstream: RecordingUpstream) -> Response:
    """The HTTP answer to a socket opened through a proxy in front of ``upstream``."""
    with serve(FalProxy(config_for(upstream))) as proxy, pytest.raises(InvalidStatus) as info:
        connect(relay_url(proxy)).close()
    return info.value.response


# --- WebSocket -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status",
    ["301 Moved Permanently", "302 Found", "307 Temporary Redirect", "308 Permanent Redirect"],
)
@pytest.mark.parametrize("where", ["same-origin", "other-host"])
def test_a_websocket_redirect_is_a_502_and_never_followed(
    elsewhere: RecordingUpstream, status: str, where: str
) -> None:
    same, other = locations(elsewhere, "ws")
    location = same if where == "same-origin" else other
    with RecordingUpstream(redirect(location, status)).running() as hostile:
        response = refused_handshake(hostile)
        assert response.status_code == 502  # before accept: an HTTP answer, not a socket
        assert "redirect" in json.loads(bytes(response.body))["detail"]
        assert hostile.paths() == ["/fal-ai/fast-lcm-diffusion/realtime"]  # asked once
    assert elsewhere.connections == 0


def test_a_redirect_to_a_non_websocket_url_is_a_502_too(elsewhere: RecordingUpstream) -> None:
    location = f"http://127.0.0.1:{elsewhere.port}/x"
    with RecordingUpstream(redirect(location)).running() as hostile:
        assert refused_handshake(hostile).status_code == 502
    assert elsewhere.connections == 0


# --- HTTP: relayed as-is, Location never fetched --------------------------------------


def assert_relayed_not_followed(
    response: httpx.Response, location: str, hostile: RecordingUpstream
) -> None:
    assert response.status_code == 302
    assert response.headers["location"] == location
    assert response.json() == {"detail": "moved"}
    assert hostile.paths() == ["/fal-ai/flux/dev"]


@pytest.mark.parametrize("where", ["same-origin", "other-host"])
def test_asgi_relays_a_302_and_never_fetches_its_location(
    elsewhere: RecordingUpstream, where: str
) -> None:
    same, other = locations(elsewhere, "http")
    location = same if where == "same-origin" else other
    with RecordingUpstream(redirect(location)).running() as hostile:
        with serve(FalProxy(config_for(hostile))) as proxy:
            response = httpx.post(
                proxy + ROUTE, headers={"x-fal-target-url": FLUX}, json={}, timeout=10
            )
        assert_relayed_not_followed(response, location, hostile)
    assert elsewhere.connections == 0


@pytest.mark.parametrize("where", ["same-origin", "other-host"])
def test_wsgi_relays_a_302_and_never_fetches_its_location(
    elsewhere: RecordingUpstream, where: str
) -> None:
    same, other = locations(elsewhere, "http")
    location = same if where == "same-origin" else other
    with RecordingUpstream(redirect(location)).running() as hostile:
        app = Flask(__name__)
        proxy = register_fal_proxy(app, SyncFalProxy(config_for(hostile)))
        try:
            with serve_wsgi(app) as url:
                response = httpx.post(
                    url + ROUTE, headers={"x-fal-target-url": FLUX}, json={}, timeout=10
                )
        finally:
            proxy.close()
        assert_relayed_not_followed(response, location, hostile)
    assert elsewhere.connections == 0
