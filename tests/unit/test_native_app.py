"""Which app the native protocol serves (falproxy/standalone/native/app.py)."""

from __future__ import annotations

import pytest
from uvicorn.middleware.message_logger import MessageLoggerMiddleware
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from falproxy import FalProxy, ProxyConfig
from falproxy.core.errors import ConfigError
from falproxy.proxy import Proxy
from falproxy.standalone.native.app import served_app
from falproxy.standalone.server import FakeBesideProxy


def proxy() -> FalProxy:
    return FalProxy(ProxyConfig(credential="key-id:key-secret"))


def test_uvicorn_wrappers_are_unwrapped() -> None:
    inner = proxy()
    served = served_app(MessageLoggerMiddleware(ProxyHeadersMiddleware(inner)))  # type: ignore[arg-type]
    assert served.proxy is inner and served.hands_over is None


async def fake(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never called")


def test_fake_mode_hands_the_fake_paths_over() -> None:
    inner = proxy()
    served = served_app(FakeBesideProxy(inner, fake))  # type: ignore[arg-type]
    assert served.proxy is inner and served.hands_over is not None
    assert served.hands_over({"path": "/_fake/run/x", "root_path": ""})
    assert not served.hands_over({"path": "/_fakeish", "root_path": ""})


def test_any_other_app_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="serves a FalProxy"):
        served_app(fake)


def test_any_proxy_of_the_proxy_layer_is_served_without_the_asgi_app() -> None:
    """The native protocol finds the proxy through falproxy.proxy, not falproxy.asgi."""
    inner = Proxy(ProxyConfig(credential="key-id:key-secret"))
    assert served_app(inner).proxy is inner
    beside = FakeBesideProxy(inner, fake)  # type: ignore[arg-type]
    assert served_app(beside).proxy is inner


def test_an_app_holding_something_else_than_a_proxy_is_refused() -> None:
    class Impostor:
        proxy = object()

        def serves_fake(self, scope: object) -> bool:
            return False

    with pytest.raises(ConfigError, match="serves a FalProxy"):
        served_app(Impostor())
