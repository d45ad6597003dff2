"""``fal.run``: synchronous runs and ``/stream`` (docs/fal-protocol.md §6 and §8).

A run validates its input, waits a short, speed-scaled moment and answers with the output or
the scenario's error. ``/stream`` sends progress events then the full output as the last event,
with no end marker: the end of the body ends the stream.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .context import FakeContext
from .errors import detail
from .ids import EndpointId, parse_endpoint
from .inputs import InputError, check_request_timeout, read_input
from .probes import PROBES
from .scenarios import Outcome, outcome_for, scenario_of
from .streaming import SSE_HEADERS, TrackedStream, sleep_unless_gone, sse_comment, sse_event
from .timeline import QUEUE_SECONDS, SLOW_QUEUE_SECONDS

RUN_SECONDS = 0.3  # nominal time a sync run takes
STREAM_INTERVAL = 0.2  # nominal gap between /stream events
STREAM_EVENTS = 4  # progress events plus the final output
GARBAGE_EVENT = b"data: this is not JSON {\n\n"  # for ``fake/stream-garbage``


def outcome_response(outcome: Outcome) -> Response:
    """An outcome as fal answers it directly."""
    return JSONResponse(outcome.body, outcome.status_code, headers=dict(outcome.headers))


def run_seconds(scenario: str) -> float:
    """Nominal duration of a sync run; ``fake/slow`` also waits out its long queue."""
    return RUN_SECONDS + (SLOW_QUEUE_SECONDS - QUEUE_SECONDS if scenario == "slow" else 0.0)


class RunEndpoints:
    """Handlers mounted under ``/run``."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        """``POST {id}/stream`` and ``GET|POST {id}``."""
        return [
            Route("/{endpoint:path}/stream", self.stream, methods=["POST"]),
            Route("/{endpoint:path}", self.run, methods=["GET", "POST"]),
        ]

    def _endpoint(self, request: Request) -> EndpointId:
        """Parse the id, then authorise for its alias; 401 before 404 so ids do not leak."""
        endpoint = parse_endpoint(request.path_params["endpoint"])
        self.ctx.authorize(request, endpoint.alias if endpoint else None)
        if endpoint is None:
            raise detail(404, "Application not found")
        check_request_timeout(request.headers)
        return endpoint

    async def _outcome(self, request: Request, endpoint: EndpointId) -> Outcome:
        try:
            payload = await read_input(request)
        except InputError as problems:
            raise problems.as_fake_error() from None
        return outcome_for(endpoint, payload, self.ctx.base_url(request))

    async def run(self, request: Request) -> Response:
        """Synchronous run; the input is the JSON body, or the query for ``GET``."""
        endpoint = self._endpoint(request)
        scenario = scenario_of(endpoint)
        if scenario in PROBES:
            return await PROBES[scenario](self.ctx, request, endpoint)
        outcome = await self._outcome(request, endpoint)
        never = scenario == "never-completes"
        seconds = math.inf if never else self.ctx.delay(run_seconds(scenario))
        if await sleep_unless_gone(request, seconds):
            return Response(status_code=499)  # nobody is listening any more
        response = outcome_response(outcome)
        if outcome.status_code == 200:  # fal bills successful runs (docs/fal-protocol.md §17)
            response.headers.update(self.ctx.billing.units_header(endpoint.app_id))
        return response

    async def stream(self, request: Request) -> Response:
        """Server-sent progress events, then the output as the last event."""
        endpoint = self._endpoint(request)
        outcome = await self._outcome(request, endpoint)
        if outcome.status_code != 200:
            return outcome_response(outcome)
        events = self._events(scenario_of(endpoint), outcome.body)
        media = "text/event-stream"
        return TrackedStream(events, self.ctx.stats, media_type=media, headers=SSE_HEADERS)

    async def _events(self, scenario: str, output: Any) -> AsyncGenerator[bytes, None]:
        interval = self.ctx.delay(STREAM_INTERVAL)
        steps = STREAM_EVENTS - 1
        for step in range(1, steps + 1):
            if step > 1:
                await anyio.sleep(interval)
            yield sse_event({"progress": step / STREAM_EVENTS, "step": step, "steps": steps})
            if scenario == "stream-garbage" and step == 1:
                yield GARBAGE_EVENT
        while scenario == "never-completes":
            await anyio.sleep(self.ctx.keepalive)
            yield sse_comment("keep-alive")
        await anyio.sleep(interval)
        yield sse_event(output)
