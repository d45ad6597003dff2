"""How a relayed socket ended: who stopped first, with which code, and the call's outcome.

Shared by both relays (the message pumps of :mod:`.pumps` and the frame relay of
:mod:`.splice`), so a socket's ProxyEvent reads the same whichever relay carried it.
"""

from __future__ import annotations

from dataclasses import dataclass

from falproxy.core.outcomes import Outcome
from falproxy.relay.socket.close import MESSAGE_TOO_BIG, POLICY_VIOLATION
from falproxy.relay.socket.exchange import VANISHED

__all__ = ["Ending", "outcome_of"]


@dataclass(frozen=True, slots=True)
class Ending:
    """Who stopped first, with which close code and reason."""

    side: str  # "client", "upstream" or "proxy"
    code: int | None
    reason: str = ""


def outcome_of(ending: Ending) -> Outcome:
    """The call's outcome: a vanished peer, a refused message, a rate limit, or OK."""
    if ending.code == VANISHED:
        return Outcome.CLIENT_GONE if ending.side == "client" else Outcome.UPSTREAM_ERROR
    if ending.side == "proxy" and ending.code == POLICY_VIOLATION:
        return Outcome.LIMITED
    return Outcome.REFUSED if ending.code == MESSAGE_TOO_BIG else Outcome.OK
