"""``GET …/requests/{id}/status/stream``: status changes as SSE (docs/fal-protocol.md §7.3).

The current status goes out at once, then one event per change carrying only new log lines,
a ``: keep-alive`` comment after each quiet keep-alive period, and the stream closes right
after ``COMPLETED``. A cancellation wakes the stream immediately.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import anyio

from .context import FakeContext
from .queue import QueuedRequest, Snapshot
from .queue_views import logs_between, status_body
from .streaming import sse_comment, sse_event

MIN_PAUSE = 0.001  # never spin when float rounding lands exactly on a step boundary


async def _pause(ctx: FakeContext, record: QueuedRequest, snap: Snapshot, wake_at: float) -> None:
    """Sleep until the next step, the keep-alive deadline or a cancellation."""
    timeout = max(0.0, wake_at - time.monotonic())
    until_change = ctx.queue.seconds_to_next_step(record, snap.step)
    if ctx.speed == 0 and snap.step < record.plan.final_step:
        until_change = 0.0  # each event is a status call: advance right away
    if until_change is not None:
        timeout = min(timeout, max(until_change, MIN_PAUSE))
    with anyio.move_on_after(timeout):
        await record.cancelled.wait()


async def status_events(
    ctx: FakeContext, record: QueuedRequest, with_logs: bool
) -> AsyncGenerator[bytes, None]:
    """Yield SSE chunks until the request completes (forever for ``never-completes``)."""
    sent_logs = 0
    last: tuple[str, int, int] | None = None
    quiet_since = time.monotonic()
    while True:
        snap = ctx.queue.snapshot(record, advance=True)
        key = (snap.status, snap.queue_position, snap.log_count)
        if key != last:
            logs = logs_between(record, sent_logs, snap.log_count) if with_logs else None
            yield sse_event(status_body(record, snap, logs))
            sent_logs, last, quiet_since = snap.log_count, key, time.monotonic()
        if snap.status == "COMPLETED":
            return
        if time.monotonic() - quiet_since >= ctx.keepalive:
            yield sse_comment("keep-alive")
            quiet_since = time.monotonic()
        await _pause(ctx, record, snap, quiet_since + ctx.keepalive)
