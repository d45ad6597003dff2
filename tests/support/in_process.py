"""The proxy in this process behind its ASGI app and its WSGI pipeline, anonymous calls allowed.

A test that takes the ``front`` fixture runs once per front end (ids ``asgi`` and
``wsgi``); ``front(fake_url, **settings)`` serves a proxy with those settings on a
loopback port and yields its base URL. tests/live/conftest.py registers the fixture.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from falproxy import FalProxy
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import proxy_config, serve
from tests.support.wsgi_server import serve_sync_proxy

Front = Callable[..., AbstractContextManager[str]]


def asgi(fake_url: str, **settings: Any) -> AbstractContextManager[str]:
    return serve(FalProxy(proxy_config(fake_url, allow_anonymous=True, **settings)))


def wsgi(fake_url: str, **settings: Any) -> AbstractContextManager[str]:
    return serve_sync_proxy(SyncFalProxy(proxy_config(fake_url, allow_anonymous=True, **settings)))


@pytest.fixture(params=[asgi, wsgi], ids=["asgi", "wsgi"])
def front(request: pytest.FixtureRequest) -> Front:
    front: Front = request.param
    return front
