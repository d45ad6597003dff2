"""The standalone server's ASGI app: the proxy, and in fake mode the fake fal beside it.

``falproxy serve`` passes its settings to uvicorn workers through the environment, so
every worker builds the same app with :func:`app_from_env`. In fake mode the fake fal is
mounted under ``/_fake`` on the same port and every fal host is mapped to it
(:mod:`falproxy.config.fake_mode`, the same mapping ``FALPROXY_FAKE_URL`` uses): the proxy
calls itself over loopback, exactly as it would call fal, and the upload URLs the fake
hands out are reachable by the browser.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping

from falproxy.asgi.app import FalProxy
from falproxy.config.fake_mode import FAKE_HOST_PATHS as FAKE_HOST_PATHS  # re-exported
from falproxy.config.fake_mode import with_fake_mode
from falproxy.config.file import config_from_sources
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import ConfigError
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE
from falproxy.core.pipeline import route_path
from falproxy.core.types import ASGIApp, Receive, Scope, Send
from falproxy.ops.shutdown import chain_drain_on_exit_signals
from falproxy.standalone.heap import settle_heap

FAKE_PREFIX = "/_fake"
# Set by `falproxy serve --fake` for its workers: the loopback base URL they call themselves
# on. Read only by fake_app_from_env, the factory the command line picks for --fake, so a
# leftover value in the environment never turns fake mode on by itself.
FAKE_BASE_ENV = "FALPROXY_FAKE_BASE"
FAKE_SPEED_ENV = "FALPROXY_FAKE_SPEED"
# uvicorn's own proxy-header variable: `falproxy serve` turns proxy headers off, so it is dead.
UVICORN_FORWARDED_ENV = "FORWARDED_ALLOW_IPS"
FORWARDED_IGNORED_WARNING = (
    f"{UVICORN_FORWARDED_ENV} is set but has no effect: falproxy serve trusts X-Forwarded-For "
    "only from FALPROXY_TRUSTED_PROXIES (the load balancer's addresses or networks)"
)
STALE_FAKE_BASE_WARNING = (
    f"{FAKE_BASE_ENV} is set in the environment and ignored: fake mode is turned on only by "
    "`falproxy serve --fake` or FALPROXY_FAKE_URL"
)

logger = logging.getLogger("falproxy")


class FakeBesideProxy:
    """Send ``/_fake/...`` to the fake fal and everything else to the proxy."""

    def __init__(self, proxy: FalProxy, fake: ASGIApp) -> None:
        self.proxy = proxy
        self.fake = fake

    @staticmethod
    def serves_fake(scope: Scope) -> bool:
        """Whether ``scope`` (an HTTP or WebSocket request) is for the fake fal."""
        return (route_path(scope) + "/").startswith(FAKE_PREFIX + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and self.serves_fake(scope):
            scope = dict(scope, root_path=scope.get("root_path", "") + FAKE_PREFIX)
            await self.fake(scope, receive, send)
        else:
            await self.proxy(scope, receive, send)


def fake_config(config: ProxyConfig, base_url: str) -> ProxyConfig:
    """``config`` in fake mode against the fake mounted beside it at ``base_url``."""
    return with_fake_mode(dataclasses.replace(config, fake_url=f"{base_url}{FAKE_PREFIX}"))


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


def startup_notices(env: Mapping[str, str]) -> list[str]:
    """Environment variables that look like settings but do nothing here."""
    notices = []
    if env.get(UVICORN_FORWARDED_ENV):
        notices.append(FORWARDED_IGNORED_WARNING)
    return notices


def app_from_env(env: Mapping[str, str] | None = None) -> ASGIApp:
    """The app a ``falproxy serve`` worker runs (a uvicorn factory).

    uvicorn calls it after installing its signal handlers, so SIGTERM also marks the
    process as draining (``/readyz`` 503); see :mod:`falproxy.ops.shutdown`. Fake mode
    here comes only from the ``fake_url`` setting (FALPROXY_FAKE_URL).
    """
    env = os.environ if env is None else env
    notices = startup_notices(env)
    if env.get(FAKE_BASE_ENV):
        notices.append(STALE_FAKE_BASE_WARNING)
    for notice in notices:
        logger.warning(notice)
    app = build_app(config_from_sources(env))
    chain_drain_on_exit_signals()
    settle_heap()
    return app


def fake_app_from_env(env: Mapping[str, str] | None = None) -> ASGIApp:
    """The app a ``falproxy serve --fake`` worker runs: the proxy and the fake beside it."""
    env = os.environ if env is None else env
    for notice in startup_notices(env):
        logger.warning(notice)
    fake_base = env.get(FAKE_BASE_ENV)
    if not fake_base:
        raise ConfigError(f"{FAKE_BASE_ENV} missing: start fake mode with `falproxy serve --fake`")
    speed = float(env.get(FAKE_SPEED_ENV) or 1.0)
    app = build_app(config_from_sources(env), fake_base=fake_base, fake_speed=speed)
    chain_drain_on_exit_signals()
    settle_heap()
    return app
