"""Request ownership: a queued request is read by the identity that submitted it, only.

``FALPROXY_REQUEST_OWNERSHIP``: ``auto`` (the default) is on when authentication is
configured (static tokens, JWTs, a JWKS or an ``authenticate`` hook), ``on`` and ``off``
force it. While it is on, the status, status stream, logs, result and cancel of a queued
request are served to its owner only; anyone else, and any request id the proxy has no
record of (never submitted through it, or older than ``FALPROXY_REQUEST_TTL``), gets
404 JSON (not 403: the answer never confirms that an id exists), and nothing reaches fal.

Owners: an identified caller owns what it submits as ``id:<identity>``. A caller without
an identity (``FALPROXY_ALLOW_ANONYMOUS``) submits as ``anonymous``: such requests are
readable by any anonymous caller and by no identified one, and anonymous callers cannot
read an identified caller's requests. (An address would be a weaker owner than it looks:
phones change networks mid-poll, and many users share one NAT.)
"""

from __future__ import annotations

from typing import Final

from falproxy.admission.request_store import RequestRecord, RequestStore
from falproxy.core.errors import RequestNotFound

ANONYMOUS: Final = "anonymous"


class Ownership:
    """The owner check of request-scoped reads, against the records of submits."""

    def __init__(self, store: RequestStore, ttl: float) -> None:
        self._store = store
        self.ttl = ttl

    @staticmethod
    def owner_of(identity: str | None) -> str:
        return ANONYMOUS if identity is None else f"id:{identity}"

    async def check(self, request_id: str, app_id: str, identity: str | None) -> RequestRecord:
        """The record of ``request_id`` if ``identity`` owns it on ``app_id``; else 404.

        The URL's app must be the app the request was submitted to, so a request cannot
        be read through another app's URL (whose policy or budget may differ).
        """
        record = await self._store.get_request(request_id)
        if record is None or record.owner != self.owner_of(identity):
            raise RequestNotFound()
        endpoint = record.endpoint
        if endpoint != app_id and not endpoint.startswith(app_id + "/"):
            raise RequestNotFound()
        return record
