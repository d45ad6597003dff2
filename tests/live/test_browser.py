"""A real browser: headless Chromium runs the official client through falproxy, via CORS.

The page is served from one loopback origin and falproxy from another, so every call is
cross-origin: the browser preflights it, sends the bearer token the page adds with the
client's ``requestMiddleware``, and can read the answers only if the CORS headers are
right. The browser, the bundle and the page: tests/support/browser.py (fixtures in conftest).
"""

from __future__ import annotations

import json
from pathlib import Path

from falproxy import FalProxy, ProxyEvent
from tests.conftest import TEST_KEY_SECRET, proxy_config, serve
from tests.support.browser import NEEDS_BROWSER, DevTools, page_app

TOKEN = "browser-token"

pytestmark = NEEDS_BROWSER


def test_official_client_in_a_browser_through_cors(
    bundle: Path, browser: DevTools, fake_url: str
) -> None:
    events: list[ProxyEvent] = []

    async def record(event: ProxyEvent) -> None:
        events.append(event)

    with serve(page_app(bundle)) as page_url:
        config = proxy_config(
            fake_url, cors_origins=(page_url,), auth_tokens=(TOKEN,), on_event=(record,)
        )
        with serve(FalProxy(config)) as proxy_url:
            route = f"{proxy_url}/api/fal/proxy"
            report = browser.render(f"{page_url}/?proxy={route}&token={TOKEN}")
            refused = browser.render(f"{page_url}/?proxy={route}&token=wrong")
    assert report["subscribe"]["ok"], report
    assert report["subscribe"]["value"]["images"] == 1
    assert report["subscribe"]["value"]["last"] == "COMPLETED"
    assert report["subscribe"]["value"]["requestId"]
    assert report["stream"]["ok"], report
    assert report["stream"]["value"]["events"] >= 2
    assert report["stream"]["value"]["images"] == 1
    # With a bad token the 401 is readable cross-origin, so the client reports it.
    assert not refused["subscribe"]["ok"] and "Unauthorized" in refused["subscribe"]["error"]
    assert TEST_KEY_SECRET not in json.dumps([report, refused])
    relayed = [e for e in events if e.outcome == "ok"]
    assert relayed and {e.identity for e in relayed} == {"token-1"}
