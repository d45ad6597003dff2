"""``fal.realtime.connect`` in a real browser against ``falproxy serve --fake`` (issue 19 item 8).

The official client mints its token through the proxy, then dials ``wss://fal.run``
directly, so against the fake it fails unless the page routes that socket to the fake.
examples/fal_realtime_dev.js ships both halves for users: ``sendRealtimeToFake`` and a
``proxyTokenProvider`` (the client warns that its default provider is deprecated). Here a
page on its own origin imports that very file next to the official client (bundled by
esbuild, as an app's build would), in headless Chromium, against ``falproxy serve --fake``
started as docs/realtime.md shows, with a bearer token required.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.conftest import serve
from tests.support.browser import NEEDS_BROWSER, PAGE_DIR, DevTools, build_bundle
from tests.support.ports import free_port
from tests.support.procs import REPO, falproxy_serve

pytestmark = NEEDS_BROWSER

EXAMPLE = REPO / "examples" / "fal_realtime_dev.js"
TOKEN = "browser-realtime-token"
ROUTE = "/api/fal/proxy"


@pytest.fixture(scope="module")
def realtime_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The page script with the example module and the official client, bundled."""
    modules = build_bundle().parent / "node_modules"  # npm install, once per version
    folder = tmp_path_factory.mktemp("realtime-page")
    (folder / "node_modules").symlink_to(modules)
    shutil.copy(PAGE_DIR / "realtime_page.js", folder / "page.js")
    shutil.copy(EXAMPLE, folder / EXAMPLE.name)  # the file users copy, unchanged
    esbuild = [str(modules / ".bin" / "esbuild"), "page.js", "--bundle", "--format=iife"]
    esbuild += ["--platform=browser", "--outfile=bundle.js", "--log-level=error"]
    subprocess.run(esbuild, cwd=folder, check=True, timeout=120)
    return folder / "bundle.js"


def page(bundle_path: Path) -> Starlette:
    html = (PAGE_DIR / "index.html").read_text()

    async def index(request: Request) -> HTMLResponse:
        return HTMLResponse(html)

    async def script(request: Request) -> Response:
        return Response(bundle_path.read_bytes(), media_type="text/javascript")

    return Starlette(routes=[Route("/", index), Route("/bundle.js", script)])


@pytest.fixture(scope="module")
def page_url(realtime_bundle: Path) -> Iterator[str]:
    with serve(page(realtime_bundle)) as url:
        yield url


@pytest.fixture(scope="module")
def fake_proxy(page_url: str) -> Iterator[str]:
    """``falproxy serve --fake`` with no key, a bearer token required, the page's origin listed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(FALPROXY_CORS_ORIGINS=page_url, FALPROXY_AUTH_TOKENS=TOKEN)
    port = free_port()
    with falproxy_serve(env, port, "--fake", "--fake-speed", "0.05"):
        yield f"http://127.0.0.1:{port}"


def render(
    browser: DevTools, page_url: str, proxy: str, token: str, step: str = "realtime"
) -> dict[str, object]:
    query = f"proxy={proxy}{ROUTE}&fake={proxy}/_fake&token={token}&step={step}"
    return browser.render(f"{page_url}/?{query}")


def test_realtime_connect_against_the_fake_with_the_example_module(
    browser: DevTools, page_url: str, fake_proxy: str
) -> None:
    report = render(browser, page_url, fake_proxy, TOKEN)
    assert report["realtime"] == {
        "ok": True,
        "value": {"images": 1, "requestId": "example-realtime"},
    }, report
    assert not [w for w in report["warnings"] if "deprecated" in w], report["warnings"]  # type: ignore[attr-defined]
    # The socket reached the fake with a token minted through the proxy, not with a key.
    sessions = httpx.get(f"{fake_proxy}/_fake/__fake__/realtime", timeout=10).json()["sessions"]
    assert sessions[-1]["auth"] == "token"


def test_the_token_provider_mints_through_the_proxy_and_reports_a_refusal(
    browser: DevTools, page_url: str, fake_proxy: str
) -> None:
    minted = render(browser, page_url, fake_proxy, TOKEN, step="mint")["mint"]
    assert isinstance(minted, dict) and minted["ok"], minted
    assert minted["value"]["type"] == "string" and minted["value"]["length"] > 0
    refused = render(browser, page_url, fake_proxy, "wrong-token", step="mint")["mint"]
    assert isinstance(refused, dict) and not refused["ok"], refused
    assert refused["error"].startswith("token minting refused (401): "), refused
