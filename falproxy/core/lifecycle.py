"""A call's record, from its first byte to its one ``ProxyEvent``.

Every front end keeps one record per call (HTTP request or WebSocket) and turns it into
the call's event when it ends, whatever happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from falproxy.core.events import ProxyEvent


@dataclass(slots=True)
class RelayResult:
    """What happened to one relayed call, for the access log and events."""

    status: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    first_byte_seconds: float | None = None
    outcome: str = "ok"  # ok | client_gone | upstream_error | refused
    request_id: str | None = None
    complete: bool = False  # the whole response reached the client
    admitted: bool = False  # passed admission (identity, hooks, limits, key)


def http_event(
    method: str,
    app_id: str | None,
    result: RelayResult,
    seconds: float,
    caller: str | None = None,
) -> ProxyEvent:
    return ProxyEvent(
        kind="http",
        method=method,
        app_id=app_id,
        status=result.status,
        outcome=result.outcome,
        bytes_up=result.bytes_up,
        bytes_down=result.bytes_down,
        duration_seconds=seconds,
        first_byte_seconds=result.first_byte_seconds,
        request_id=result.request_id,
        identity=caller,
        admitted=result.admitted,
    )
