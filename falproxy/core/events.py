"""``ProxyEvent``: one record per finished call, HTTP or WebSocket.

Every call ends in exactly one event, whatever happened (relayed, refused, upstream
failure, client gone). Events feed the access log here; analytics hooks and metrics
consume the same value. An event holds no URL query, header value or key.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

from falproxy.core.outcomes import Outcome

access_logger = logging.getLogger("falproxy.access")


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


def log_event(event: ProxyEvent, *, json_format: bool = False) -> None:
    """One access-log line per call (``key=value`` text, or one JSON object)."""
    if json_format:
        access_logger.info("%s", event_json(event))
        return
    access_logger.info(
        "%s %s app=%s status=%s outcome=%s up=%d down=%d ms=%.1f",
        event.kind,
        event.method,
        event.app_id or "-",
        event.status or "-",
        event.outcome,
        event.bytes_up,
        event.bytes_down,
        event.duration_seconds * 1000,
    )


def event_json(event: ProxyEvent) -> str:
    """The event as one JSON object; it holds no secret by construction (see above)."""
    record = {key: value for key, value in asdict(event).items() if value is not None}
    return json.dumps(record, separators=(",", ":"), sort_keys=True)
