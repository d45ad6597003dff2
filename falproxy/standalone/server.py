"""The standalone server's ASGI app: the proxy, and in fake mode the fake fal beside it.

``falproxy serve`` passes its settings to uvicorn workers through the environment, so
every worker builds the same app with :func:`app_from_env`. In fake mode the fake fal is
mounted under ``/_fake`` on the same port and every fal host is mapped to it: the proxy
calls itself over loopback, exactly as it would call fal, and the upload URLs the fake
hands out are reachable by the browser.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from falproxy.asgi.app import FalProxy
from falproxy.config.file import config_from_sources
from falproxy.config.settings import ProxyConfig
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE, FalCredential
from falproxy.core.pipeline import route_path
from falproxy.core.types import ASGIApp, Receive, Scope, Send
from falproxy.ops.shutdown import chain_drain_on_exit_signals

FAKE_PREFIX = "/_fake"
# Where each fal host lives inside the fake (docs/fal-protocol.md §15).
FAKE_HOST_PATHS = {
    "fal.run": "/run",
    "queue.fal.run": "/queue",
    "rest.fal.ai": "/rest",
    "rest.alpha.fal.ai": "/rest",
    "ws.fal.run": "/ws",
}
# Set by `falproxy serve --fake`: the loopback base URL the workers call themselves on.
FAKE_BASE_ENV = "FALPROXY_FAKE_BASE"
FAKE_SPEED_ENV = "FALPROXY_FAKE_SPEED"


class FakeBesideProxy:
    """Send ``/_fake/...`` to the fake fal and everything else to the proxy."""

    def __init__(self, proxy: FalProxy, fake: ASGIApp) -> None:
        self.proxy = proxy
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and (route_path(scope) + "/").startswith(FAKE_PREFIX + "/"):
            scope = dict(scope, root_path=scope.get("root_path", "") + FAKE_PREFIX)
            await self.fake(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)


def fake_config(config: ProxyConfig, base_url: str) -> ProxyConfig:
    """``config`` with every fal host mapped to the fake and the fake's own key."""
    upstreams = {host: f"{base_url}{FAKE_PREFIX}{path}" for host, path in FAKE_HOST_PATHS.items()}
    return dataclasses.replace(
        config, credential=FalCredential(FAKE_CREDENTIAL_VALUE), upstreams=upstreams
    )


def build_app(
    config: ProxyConfig, *, fake_base: str | None = None, fake_speed: float = 1.0
) -> ASGIApp:
    """The proxy alone, or with the fake fal mounted beside it when ``fake_base`` is set."""
    if fake_base is None:
        return FalProxy(config)
    # Imported here: production starts and `falproxy check` never load the fake.
    from falproxy.fake import create_fake_app

    proxy = FalProxy(fake_config(config, fake_base))
    fake = create_fake_app(speed=fake_speed, expected_key=FAKE_CREDENTIAL_VALUE)
    return FakeBesideProxy(proxy, fake)


def app_from_env(env: Mapping[str, str] | None = None) -> ASGIApp:
    """The app a ``falproxy serve`` worker runs (a uvicorn factory).

    uvicorn calls it after installing its signal handlers, so SIGTERM also marks the
    process as draining (``/readyz`` 503); see :mod:`falproxy.ops.shutdown`.
    """
    env = os.environ if env is None else env
    fake_base = env.get(FAKE_BASE_ENV) or None
    speed = float(env.get(FAKE_SPEED_ENV) or 1.0)
    app = build_app(config_from_sources(env), fake_base=fake_base, fake_speed=speed)
    chain_drain_on_exit_signals()
    return app
