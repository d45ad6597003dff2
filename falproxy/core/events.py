"""``ProxyEvent``: one record per finished call, HTTP or WebSocket.

Every call ends in exactly one event, whatever happened (relayed, refused, upstream
failure, client gone). The access log (:mod:`falproxy.ops.logs`), analytics hooks and
metrics all consume the same value. An event holds no URL query, header value or key.
"""

from __future__ import annotations

from dataclasses import dataclass

from falproxy.core.outcomes import Outcome


@dataclass(frozen=True, slots=True)
class ProxyEvent:
    """What happened to one proxied call."""

    kind: str  # "http" or "websocket"
    method: str  # HTTP method, or "WEBSOCKET"
    app_id: str | None  # the fal app, when the target named one
    status: int  # HTTP status sent to the client (101 for a relayed socket), 0 if none
    outcome: Outcome  # how the call ended (one enum, core/outcomes.py)
    bytes_up: int = 0  # request body (or frames) sent to fal
    bytes_down: int = 0  # response body (or frames) sent to the client
    duration_seconds: float = 0.0
    first_byte_seconds: float | None = None  # until fal's response headers arrived
    request_id: str | None = None  # fal's x-fal-request-id
    identity: str | None = None  # who called, when an auth hook said so
    frames_up: int = 0  # WebSocket only
    frames_down: int = 0  # WebSocket only
    close_code: int | None = None  # WebSocket only
    admitted: bool = False  # passed admission (only admitted calls name apps in metrics)
    dropped_headers: int = 0  # upstream response headers withheld because they carried the key
    client: str | None = None  # the caller's address, resolved through trusted_proxies
    billable_units: float | None = None  # fal's x-fal-billable-units, when it sent them
    cost_usd: float | None = None  # charged against spend budgets (units x unit price)
    backup_domain: bool = False  # sent to fal's backup domain (fal.run could not be reached)
