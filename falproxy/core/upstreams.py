"""Where a validated target is actually sent: fal itself, or a mapped base URL.

Allow-listing is always decided on the original fal target; mapping happens only here,
when the outgoing URL is built, so a mapping can never widen the policy.
"""

from __future__ import annotations

from collections.abc import Mapping

from falproxy.core.redact import mask_url
from falproxy.core.targets import BACKUP_HOSTS, Target

# A WebSocket target follows its HTTP mapping with the matching ws scheme.
_WS_SCHEMES = {"http": "ws", "https": "wss"}


class UpstreamMap:
    """``fal host -> base URL`` rewrites, e.g. ``fal.run -> http://127.0.0.1:9000/run``."""

    __slots__ = ("_bases",)

    def __init__(self, bases: Mapping[str, str]) -> None:
        self._bases = {host: base.rstrip("/") for host, base in bases.items()}

    def url_for(self, target: Target) -> str:
        """The outgoing URL, rebuilt from the target's validated parts."""
        return self._url(target, target.host)

    def backup_url_for(self, target: Target) -> str | None:
        """Where the call goes if ``target``'s host cannot be reached: fal's backup domain
        for the same path and query (mapped like any host), or None if it has none.

        A primary mapped elsewhere (a fake, a test server) has no backup unless the backup
        is mapped too: a local fake that is down never sends the key to the real fal."""
        backup = BACKUP_HOSTS.get(target.host)
        if backup is None or target.scheme != "https":
            return None
        if target.host in self._bases and backup not in self._bases:
            return None
        return self._url(target, backup)

    def _url(self, target: Target, host: str) -> str:
        base = self._bases.get(host)
        if base is None:
            if host == target.host:
                return target.url
            query = f"?{target.query}" if target.query else ""
            return f"{target.scheme}://{host}{target.path}{query}"
        if target.scheme == "wss":
            scheme, rest = base.split("://", 1)
            base = f"{_WS_SCHEMES[scheme]}://{rest}"
        query = f"?{target.query}" if target.query else ""
        return f"{base}{target.path}{query}"

    def __bool__(self) -> bool:
        return bool(self._bases)

    def describe(self) -> list[str]:
        """One ``host -> base`` line per mapping, for the start-up announcement."""
        return [f"{host} -> {mask_url(base)}" for host, base in sorted(self._bases.items())]
