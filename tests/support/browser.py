"""Headless Chromium running the official ``@fal-ai/client`` from a page (tests/browser/).

``@fal-ai/client`` and ``esbuild`` come from npm into a cache folder outside the repository;
the page (``tests/browser/page.js``) is bundled once per version. Chromium is driven through
the DevTools protocol (with the ``websockets`` package) and the test reads the JSON report the
page renders into ``#result``. Chromium is Debian's (``scripts/test`` installs it when missing).

The fixtures are imported into tests/conftest.py, so any module can use them; tests
mark themselves with :data:`NEEDS_BROWSER` (a module) or :func:`needs_browser` (a test),
which also puts them in the ``browser`` tier.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from websockets.sync.client import ClientConnection, connect

CLIENT_VERSION = "1.10.1"
ESBUILD_VERSION = "0.28.2"
PAGE_DIR = Path(__file__).resolve().parents[1] / "browser"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "falproxy-tests"
BUNDLE_DIR = CACHE / f"browser-client-{CLIENT_VERSION}-esbuild-{ESBUILD_VERSION}"
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
START_TIMEOUT = 30.0
Test = TypeVar("Test", bound=Callable[..., Any])

NEEDS_BROWSER = [
    pytest.mark.browser,  # the tier (tests/conftest.py): chosen with -m browser
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (scripts/test installs Debian's chromium via apt)",
    ),
    pytest.mark.skipif(
        shutil.which("npm") is None, reason="npm is needed for @fal-ai/client and esbuild"
    ),
]


def needs_browser(test: Test) -> Test:
    """Mark one test with :data:`NEEDS_BROWSER`."""
    for mark in NEEDS_BROWSER:
        test = mark(test)
    return test


def build_bundle() -> Path:
    """Bundle the page's script with the official client (esbuild); the bundle's path."""
    folder = BUNDLE_DIR
    if not (folder / "node_modules" / ".bin" / "esbuild").exists():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text('{"private": true}')
        packages = [f"@fal-ai/client@{CLIENT_VERSION}", f"esbuild@{ESBUILD_VERSION}"]
        npm = ["npm", "install", "--no-audit", "--no-fund", "--silent", *packages]
        subprocess.run(npm, cwd=folder, check=True, timeout=300)
    shutil.copy(PAGE_DIR / "page.js", folder / "page.js")
    esbuild = [str(folder / "node_modules" / ".bin" / "esbuild"), "page.js", "--bundle"]
    esbuild += ["--format=iife", "--platform=browser", "--outfile=bundle.js", "--log-level=error"]
    subprocess.run(esbuild, cwd=folder, check=True, timeout=120)
    return folder / "bundle.js"


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The bundled page script, built once per module."""
    return build_bundle()


def page_app(bundle_path: Path) -> Starlette:
    """The test page and its script; the script is read per request, so the page can be
    served before the bundle is built."""
    html = (PAGE_DIR / "index.html").read_text()

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def bundle_js(request: Request) -> Response:
        return Response(bundle_path.read_bytes(), media_type="text/javascript")

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
    """Headless Chromium with a fresh profile, stopped (with its helpers) at the end."""
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
            deadline = time.monotonic() + START_TIMEOUT
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
