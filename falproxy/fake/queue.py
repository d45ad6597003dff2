"""Queued requests: the store, their state over time, and cancellation.

Each request keeps the :class:`Outcome` it will reveal and a :class:`Plan` of its steps;
its state is computed on demand from the clock (or from the number of status calls when the
speed is 0), so nothing runs in the background and nothing needs cleaning up.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio

from .ids import EndpointId
from .scenarios import Outcome, cancelled, scenario_of
from .timeline import LOG_INTERVAL, Plan, Status, plan_for


@dataclass
class QueuedRequest:
    """One submitted request."""

    request_id: str
    endpoint: EndpointId
    plan: Plan
    outcome: Outcome
    submitted: float = field(default_factory=time.monotonic)
    submitted_wall: float = field(default_factory=time.time)
    ticks: int = 0  # status calls so far (drives the walk when speed is 0)
    frozen_step: int | None = None  # set when cancelled: the step it was stopped at
    cancelled: anyio.Event = field(default_factory=anyio.Event)


@dataclass(frozen=True)
class Snapshot:
    """A request's state at one moment."""

    status: Status
    step: int
    queue_position: int
    log_count: int


def log_entry(record: QueuedRequest, index: int) -> dict[str, str]:
    """The ``index``-th (0-based) log line, with a deterministic timestamp."""
    plan = record.plan
    offset = plan.starts_at(len(plan.positions) + index) if plan.log_step else index * LOG_INTERVAL
    moment = datetime.fromtimestamp(record.submitted_wall + offset, UTC)
    return {
        "message": f"step {index + 1}/{plan.log_lines}",
        "level": "INFO",
        "source": "USER",
        "timestamp": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


class QueueStore:
    """All queued requests, by id."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._requests: dict[str, QueuedRequest] = {}

    def submit(self, endpoint: EndpointId, outcome: Outcome) -> QueuedRequest:
        """Create a request that will end with ``outcome``."""
        plan = plan_for(scenario_of(endpoint), self.speed)
        record = QueuedRequest(str(uuid.uuid4()), endpoint, plan, outcome)
        self._requests[record.request_id] = record
        return record

    def get(self, request_id: str) -> QueuedRequest | None:
        """A request by id."""
        return self._requests.get(request_id)

    def _step(self, record: QueuedRequest, *, advance: bool) -> int:
        if record.frozen_step is not None:
            return record.frozen_step
        if self.speed == 0:  # the n-th status call sees step n-1; other calls see the last one
            record.ticks += int(advance)
            return record.plan.clamp(record.ticks - 1)
        return record.plan.step_at(time.monotonic() - record.submitted)

    def snapshot(self, record: QueuedRequest, *, advance: bool = False) -> Snapshot:
        """The request's state now; ``advance`` counts this as a status call."""
        step = self._step(record, advance=advance)
        plan = record.plan
        status: Status = "COMPLETED" if record.frozen_step is not None else plan.status(step)
        return Snapshot(status, step, plan.queue_position(step), plan.log_count(step))

    def seconds_to_next_step(self, record: QueuedRequest, step: int) -> float | None:
        """Wall-clock time until the step after ``step``; ``None`` if it never changes by time."""
        if self.speed == 0 or record.frozen_step is not None or step >= record.plan.final_step:
            return None
        elapsed = time.monotonic() - record.submitted
        return max(0.0, record.plan.starts_at(step + 1) - elapsed)

    def cancel(self, record: QueuedRequest) -> bool:
        """Stop a queued or running request; ``False`` if it had already completed."""
        current = self.snapshot(record)
        if current.status == "COMPLETED":
            return False
        record.frozen_step = current.step
        record.outcome = cancelled()
        record.cancelled.set()
        return True

    def clear(self) -> None:
        """Forget every request."""
        self._requests.clear()
