"""A call's life, from its first byte to its one ``ProxyEvent``, the same on every front end.

Rules, stated first:

1. Every call (an HTTP request or a WebSocket) gets exactly one :class:`CallRecord` when it
   arrives and yields exactly one event when it ends, whatever happened.
2. A call moves through named phases, only forwards, by the table below; the outcome of a
   call that ends early follows from the phase it reached, never from ad hoc strings.
3. Only a call that passed admission names its app in metrics (``admitted``): refusals
   cannot be used to mint metric labels.

==============  ==================================================  ==================
phase           entered when                                        may move to
==============  ==================================================  ==================
``RECEIVED``    the request (or handshake) arrived                  ADMITTED, ENDED
``ADMITTED``    identity, hooks, limits and key all passed          RELAYING, ENDED
``RELAYING``    the call was sent upstream (a socket: accepted)     ENDED
``ENDED``       the event was built                                 (none)
==============  ==================================================  ==================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum

from falproxy.core.answers import Answer
from falproxy.core.errors import ProxyError
from falproxy.core.events import ProxyEvent
from falproxy.core.outcomes import Outcome

HTTP = "http"
WEBSOCKET = "websocket"
# RFC 9110 15.2.2: the status of an accepted upgrade.
SWITCHING_PROTOCOLS = 101


class Phase(Enum):
    RECEIVED = "received"
    ADMITTED = "admitted"
    RELAYING = "relaying"
    ENDED = "ended"


# The one transition table: the phases each phase may move to.
TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.RECEIVED: frozenset({Phase.ADMITTED, Phase.ENDED}),
    Phase.ADMITTED: frozenset({Phase.RELAYING, Phase.ENDED}),
    Phase.RELAYING: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class PhaseError(Exception):
    """A front end moved a call backwards or skipped a phase: a bug, never user input."""


@dataclass(slots=True)
class CallRecord:
    """What happened to one call so far; the front ends and relays fill it in."""

    kind: str  # HTTP or WEBSOCKET
    method: str  # HTTP method, or "WEBSOCKET"
    started: float = field(default_factory=time.perf_counter)
    phase: Phase = Phase.RECEIVED
    app_id: str | None = None
    identity: str | None = None
    status: int = 0
    outcome: Outcome = Outcome.OK
    bytes_up: int = 0
    bytes_down: int = 0
    first_byte_seconds: float | None = None
    request_id: str | None = None
    complete: bool = False  # the whole response reached the client
    frames_up: int = 0
    frames_down: int = 0
    close_code: int | None = None
    admitted: bool = False  # got past admission (it may have ended since)
    dropped_headers: int = 0  # upstream response headers withheld because they carried the key
    client: str | None = None  # the caller's address (core/client_address.py), once resolved
    billable_units: float | None = None  # fal's x-fal-billable-units, when it sent them
    cost_usd: float | None = None  # what this call was charged against spend budgets
    backup_domain: bool = False  # fal.run was unreachable: the call went to fal's backup domain

    def move(self, phase: Phase) -> None:
        """Enter ``phase``; only the moves in :data:`TRANSITIONS` are allowed."""
        if phase not in TRANSITIONS[self.phase]:
            raise PhaseError(f"a call cannot move from {self.phase.name} to {phase.name}")
        self.phase = phase

    def admit(self, identity: str | None) -> None:
        self.identity = identity
        self.admitted = True
        self.move(Phase.ADMITTED)

    def refuse(self, error: ProxyError) -> None:
        """The call ends in ``error``, answered by the proxy itself."""
        self.status = error.status
        self.outcome = error.outcome
        self.identity = self.identity or error.caller
        self.app_id = self.app_id or error.app_id

    def answer(self, answer: Answer) -> None:
        """A ``before_request`` hook answered for fal: a refusal with the hook's status."""
        self.status = answer.status
        self.outcome = Outcome.REFUSED

    def upstream_failed(self) -> None:
        self.outcome = Outcome.UPSTREAM_ERROR

    def client_gone(self) -> None:
        """The client left: only a call that had not already ended otherwise records it."""
        if self.outcome is Outcome.OK and not self.complete:
            self.outcome = Outcome.CLIENT_GONE

    def end(self) -> ProxyEvent:
        """The call's one event; the record cannot be ended twice."""
        self.move(Phase.ENDED)
        return ProxyEvent(
            kind=self.kind,
            method=self.method,
            app_id=self.app_id,
            status=self.status,
            outcome=self.outcome,
            bytes_up=self.bytes_up,
            bytes_down=self.bytes_down,
            duration_seconds=time.perf_counter() - self.started,
            first_byte_seconds=self.first_byte_seconds,
            request_id=self.request_id,
            identity=self.identity,
            frames_up=self.frames_up,
            frames_down=self.frames_down,
            close_code=self.close_code,
            admitted=self.admitted,
            dropped_headers=self.dropped_headers,
            client=self.client,
            billable_units=self.billable_units,
            cost_usd=self.cost_usd,
            backup_domain=self.backup_domain,
        )
