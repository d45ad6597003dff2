"""The JSON shapes of queue answers (docs/fal-protocol.md §7.1-7.3), kept apart from routing.

Status bodies carry only the keys their status defines, but always those: the Python client
indexes ``queue_position`` (queued) and ``logs`` (running, completed) directly.
"""

from __future__ import annotations

from typing import Any

from .queue import QueuedRequest, Snapshot, log_entry
from .timeline import LOG_INTERVAL
from .urls import queue_urls

TRUE_VALUES = frozenset({"1", "true"})  # JS sends logs=1, Python logs=true


def wants_logs(raw: str | None) -> bool:
    """Whether a ``logs`` query value asks for logs."""
    return (raw or "").strip().lower() in TRUE_VALUES


def logs_between(record: QueuedRequest, start: int, end: int) -> list[dict[str, str]]:
    """Log lines ``start..end-1``."""
    return [log_entry(record, index) for index in range(start, end)]


def submit_body(record: QueuedRequest) -> dict[str, Any]:
    """The answer to a queue submission."""
    return {
        "request_id": record.request_id,
        **queue_urls(record.endpoint.app_id, record.request_id),
        "status": "IN_QUEUE",
        "queue_position": record.plan.queue_position(0),
    }


def status_body(
    record: QueuedRequest, snap: Snapshot, logs: list[dict[str, str]] | None
) -> dict[str, Any]:
    """A status object; ``logs`` is whatever the caller decided to show (or ``None``)."""
    body: dict[str, Any] = {
        "status": snap.status,
        "request_id": record.request_id,
        **queue_urls(record.endpoint.app_id, record.request_id),
    }
    if snap.status == "IN_QUEUE":
        body["queue_position"] = snap.queue_position
        return body
    body["logs"] = logs
    if snap.status == "COMPLETED":
        body["metrics"] = {"inference_time": round(record.plan.log_lines * LOG_INTERVAL, 3)}
        if record.outcome.error is not None:
            body["error"] = record.outcome.error
            body["error_type"] = record.outcome.error_type
    return body
