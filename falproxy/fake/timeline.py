"""When a queued request is where: the pure state machine behind status polling.

A request walks numbered *steps*: first one step per queue position (counting down), then one
per log line while ``IN_PROGRESS``, then ``COMPLETED``. With a positive speed the step comes
from elapsed wall-clock time; with speed 0 it is the number of status calls so far, which gives
tests a deterministic walk without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED"]

QUEUE_SECONDS = 1.0  # nominal time spent queued (docs/fal-protocol.md §15)
SLOW_QUEUE_SECONDS = 5.0  # the ``fake/slow`` scenario's long queue
LOG_INTERVAL = 0.25  # one log line every ~250 ms while running
LOG_LINES = 6  # 6 x 250 ms = the nominal 1.5 s of IN_PROGRESS


@dataclass(frozen=True)
class Plan:
    """The steps of one request and how long each lasts (seconds, already scaled)."""

    positions: tuple[int, ...]
    log_lines: int
    completes: bool
    queue_step: float
    log_step: float

    @property
    def final_step(self) -> int:
        """The last step a request can reach: COMPLETED, or the last running step."""
        done = len(self.positions) + self.log_lines
        return done if self.completes else done - 1

    def clamp(self, step: int) -> int:
        """Bound a step to the plan."""
        return max(0, min(step, self.final_step))

    def step_at(self, elapsed: float) -> int:
        """The step reached ``elapsed`` seconds after submission."""
        queued = len(self.positions) * self.queue_step
        if elapsed < queued:
            return self.clamp(int(elapsed / self.queue_step))
        if self.log_step <= 0:
            return self.final_step
        return self.clamp(len(self.positions) + int((elapsed - queued) / self.log_step))

    def starts_at(self, step: int) -> float:
        """Seconds after submission at which ``step`` begins."""
        queued_steps = min(step, len(self.positions))
        return queued_steps * self.queue_step + max(0, step - queued_steps) * self.log_step

    def status(self, step: int) -> Status:
        """The status string of a step."""
        if step < len(self.positions):
            return "IN_QUEUE"
        if step < len(self.positions) + self.log_lines:
            return "IN_PROGRESS"
        return "COMPLETED"

    def queue_position(self, step: int) -> int:
        """Requests ahead at a queued step (0 once running)."""
        return self.positions[step] if step < len(self.positions) else 0

    def log_count(self, step: int) -> int:
        """How many log lines exist at a step."""
        return max(0, min(step - len(self.positions) + 1, self.log_lines))


def plan_for(scenario: str, speed: float) -> Plan:
    """The plan of a scenario: ``slow`` queues longer, ``never-completes`` never finishes."""
    completes = scenario != "never-completes"
    if speed == 0:
        steps: tuple[int, ...] = (2, 1, 0) if scenario == "slow" else (0,)
        return Plan(steps, 1, completes, 0.0, 0.0)
    seconds = SLOW_QUEUE_SECONDS if scenario == "slow" else QUEUE_SECONDS
    count = 10 if scenario == "slow" else 3
    positions = tuple(range(count - 1, -1, -1))
    return Plan(positions, LOG_LINES, completes, seconds * speed / count, LOG_INTERVAL * speed)
