"""The documentation's runnable Python blocks run, and the app each builds proxies a call.

A block marked ``<!-- runnable -->`` in README.md or docs/ is executed as written, with the
environment a user would have (``FAL_KEY``) plus ``FALPROXY_UPSTREAMS`` pointing fal's hosts
at the fake fal. When the block leaves an app behind (``app``, ``application`` or ``proxy``),
the app is served on a loopback port (uvicorn for ASGI, Werkzeug's threaded server for WSGI)
and one real call goes through it to the fake. The call carries a ``session`` cookie, so a
block that shows a cookie-based check of the app's own admits it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY, fake_upstreams, serve
from tests.support.markdown_blocks import Block, doc_blocks
from tests.support.wsgi_server import serve_wsgi

RUNNABLE = [block for block in doc_blocks() if block.runnable]
TARGET = "https://fal.run/fal-ai/flux/dev"
APP_NAMES = ("app", "application", "proxy")



@contextmanager
def served(app: Any) -> Iterator[str]:
    if hasattr(app, "wsgi_app"):  # Flask
        with serve_wsgi(app) as url:
            yield url
    else:
        with serve(app) as url:
            yield url


@pytest.fixture
def user_env(monkeypatch: pytest.MonkeyPatch, fake_url: str) -> None:
    """A user's environment: a key, nothing else of falproxy's; fal's hosts are the fake."""
    import os

    for name in list(os.environ):
        if name.startswith(("FALPROXY_", "FAL_KEY")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FAL_KEY", TEST_KEY)
    upstreams = fake_upstreams(fake_url)
    monkeypatch.setenv("FALPROXY_UPSTREAMS", ",".join(f"{h}={b}" for h, b in upstreams.items()))


def test_the_docs_have_runnable_blocks() -> None:
    assert RUNNABLE, "no block is marked <!-- runnable -->"


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
@pytest.mark.usefixtures("user_env")
def test_runnable_block(block: Block) -> None:
    namespace: dict[str, Any] = {"__name__": "docs_block"}
    exec(compile(block.source, block.where, "exec"), namespace)
    app = next((namespace[name] for name in APP_NAMES if name in namespace), None)
    if app is None:
        return
    route = namespace.get("ROUTE", "/api/fal/proxy")
    try:
        with served(app) as url:
            answer = httpx.post(
                f"{url}{route}",
                headers={"x-fal-target-url": TARGET},
                json={"prompt": "a lighthouse"},
                cookies={"session": "docs"},
                timeout=30,
            )
    finally:
        closer = getattr(namespace.get("proxy"), "close", None)
        if callable(closer) and not hasattr(namespace["proxy"], "aclose"):
            closer()
    assert answer.status_code == 200, (block.where, answer.text)
    assert answer.json()["images"], block.where
