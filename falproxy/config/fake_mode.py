"""Fake mode: every fal host mapped to a fake fal, with the fake's key, announced loudly.

Fake mode is only ever turned on explicitly: ``falproxy serve --fake`` on the command line
(the fake mounted beside the proxy), or the ``fake_url`` setting (``FALPROXY_FAKE_URL``,
a fake started with ``falproxy fake --port N``). In both, the real key is never sent
anywhere (the fake's own key replaces it), and every process that builds a proxy prints
:data:`FAKE_MODE_BANNER` once, so nobody mistakes fake answers for fal's.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import TYPE_CHECKING

from falproxy.core.keys import FAKE_CREDENTIAL_VALUE, FalCredential

if TYPE_CHECKING:
    from falproxy.config.settings import ProxyConfig

# Where each fal host lives inside the fake fal (docs/fal-protocol.md §15).
FAKE_HOST_PATHS = {
    "fal.run": "/run",
    "queue.fal.run": "/queue",
    "rest.fal.ai": "/rest",
    "rest.alpha.fal.ai": "/rest",
    "ws.fal.run": "/ws",
    "api.fal.ai": "/api",  # fal's platform API: the pricing the proxy asks for itself
    # fal's backup domains answer like their primaries: in fake mode a fallback stays local.
    "falrun.com": "/run",
    "queue.falrun.com": "/queue",
}
FAKE_MODE_BANNER = (
    "FAKE MODE: every fal call is answered by the fake fal at {base}, "
    "not by fal.ai; the fake's key is used, never FAL_KEY"
)
logger = logging.getLogger("falproxy")
# Processes that already printed the banner (a worker builds its proxy more than once:
# the CLI validates in the parent, which is also the worker when --workers is 1).
_announced: set[tuple[int, str]] = set()


def fake_upstreams(base: str) -> dict[str, str]:
    """Every fal host mapped to its place in the fake fal served at ``base``."""
    return {host: f"{base}{path}" for host, path in FAKE_HOST_PATHS.items()}


def with_fake_mode(config: ProxyConfig) -> ProxyConfig:
    """``config`` as a proxy runs it: with ``fake_url`` set, every fal host mapped to the
    fake there and the fake's key instead of any FAL_KEY; otherwise ``config`` itself."""
    if config.fake_url is None:
        return config
    base = config.fake_url.rstrip("/")
    upstreams = fake_upstreams(base)
    if config.upstreams == upstreams and config.credential == FalCredential(FAKE_CREDENTIAL_VALUE):
        return config
    return dataclasses.replace(
        config, upstreams=upstreams, credential=FalCredential(FAKE_CREDENTIAL_VALUE)
    )


def announce_fake_mode(base: str | None) -> None:
    """Announce fake mode once per process; nothing when ``base`` is None.

    Fake mode is chosen, so it is no warning: an INFO line where falproxy's logger is
    configured (``falproxy serve``, in FALPROXY_LOG_FORMAT), else a plain stderr line,
    so it shows in an app that set up no logging.
    """
    if base is None or (os.getpid(), base) in _announced:
        return
    _announced.add((os.getpid(), base))
    banner = FAKE_MODE_BANNER.format(base=base)
    if logger.hasHandlers() and logger.isEnabledFor(logging.INFO):
        logger.info(banner)
    else:
        print(f"falproxy: {banner}", file=sys.stderr, flush=True)
