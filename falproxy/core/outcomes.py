"""How a call ended: the one enum every front end, event, log line and metric uses."""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """The ``outcome`` of a :class:`~falproxy.core.events.ProxyEvent` (and its metric label)."""

    OK = "ok"  # relayed to the end (a socket: closed by either side normally)
    REFUSED = "refused"  # answered by the proxy itself: a rule, a hook or a bad request
    LIMITED = "limited"  # refused by a rate limit (429)
    UPSTREAM_ERROR = "upstream_error"  # fal unreachable, too slow, or broke the response
    CLIENT_GONE = "client_gone"  # the client left before the response was complete
