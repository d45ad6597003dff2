"""A real browser: headless Chromium runs the official client through falproxy, via CORS.

The page is served from one loopback origin and falproxy from another, so every call is
cross-origin: the browser preflights it, sends the bearer token the page adds with the
client's ``requestMiddleware``, and can read the answers only if the CORS headers are
right. ``@fal-ai/client`` and ``esbuild`` come from npm into a cache folder outside the
repository; the page is bundled once per version. The test drives Chromium through the
DevTools protocol (with the ``websockets`` package) and reads the rendered result from
the page's DOM. Chromium is Debian's (``scripts/test`` installs it when missing).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from websockets.sync.client import ClientConnection, connect

from falproxy import FalProxy, ProxyEvent
from tests.conftest import TEST_KEY_SECRET, proxy_config, serve

CLIENT_VERSION = "1.10.1"
ESBUILD_VERSION = "0.28.2"
HERE = Path(__file__).parent.parent / "browser"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "falproxy-tests"
CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--remote-debugging-port=0",
)
TOKEN = "browser-token"

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (scripts/test installs Debian's chromium via apt)",
    ),
    pytest.mark.skipif(
        shutil.which("npm") is None, reason="npm is needed for @fal-ai/client and esbuild"
    ),
]


@pytest.fixture(scope="module")
def bundle() -> bytes:
    """The page's script with the official client, bundled by esbuild."""
    folder = CACHE / f"browser-client-{CLIENT_VERSION}-esbuild-{ESBUILD_VERSION}"
    if not (folder / "node_modules" / ".bin" / "esbuild").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true}')
        packages = [f"@fal-ai/client@{CLIENT_VERSION}", f"esbuild@{ESBUILD_VERSION}"]
        npm = ["npm", "install", "--no-audit", "--no-fund", "--silent", *packages]
        subprocess.run(npm, cwd=folder, check=True, timeout=300)
    shutil.copy(HERE / "page.js", folder / "page.js")
    esbuild = [str(folder / "node_modules" / ".bin" / "esbuild"), "page.js", "--bundle"]
    esbuild += ["--format=iife", "--platform=browser", "--outfile=bundle.js", "--log-level=error"]
    subprocess.run(esbuild, cwd=folder, check=True, timeout=120)
    return (folder / "bundle.js").read_bytes()


def page_app(script: bytes) -> Starlette:
    html = (HERE / "index.html").read_text()

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def bundle_js(request: Request) -> Response:
        return Response(script, media_type="text/javascript")

    return Starlette(routes=[Route("/", index), Route("/bundle.js", bundle_js)])


class DevTools:
    """A minimal DevTools-protocol session on one page target."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == self.last_id:
                assert "error" not in message, message["error"]
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return answer["result"].get("value")

    def render(self, url: str, timeout: float = 60) -> dict[str, Any]:
        """Open ``url`` and return the JSON the page renders into #result."""
        self.call("Page.navigate", url=url)
        done = "document.getElementById('result')?.dataset.done === 'yes'"
        deadline = time.monotonic() + timeout
        while not self.evaluate(done):
            assert time.monotonic() < deadline, "the page did not finish"
            time.sleep(0.1)
        text = self.evaluate("document.getElementById('result').textContent")
        report: dict[str, Any] = json.loads(text)
        return report


@pytest.fixture(scope="module")
def browser() -> Iterator[DevTools]:
    assert CHROMIUM is not None
    profiles = tempfile.TemporaryDirectory(prefix="falproxy-chromium-", ignore_cleanup_errors=True)
    with profiles as profile:
        args = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        # Its own process group, so its helper processes stop with it (and only they).
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text().strip():
                assert process.poll() is None, "chromium exited at start-up"
                assert time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.1)
            port = port_file.read_text().split()[0]
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t["type"] == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=None) as socket:
                yield DevTools(socket)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_official_client_in_a_browser_through_cors(
    bundle: bytes, browser: DevTools, fake_url: str
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
