"""``queue.fal.run``: submit, status, status stream, result and cancel (docs/fal-protocol.md §7).

Submission uses the full endpoint id; the other calls address ``[namespace/]owner/alias`` only
and answer 405 when the endpoint path is kept (as reported for fal). Every answer about a
request carries that request's id in ``x-fal-request-id``.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .context import FakeContext
from .errors import FakeError, detail
from .ids import parse_endpoint
from .inputs import InputError, check_request_timeout, read_input
from .queue import QueuedRequest
from .queue_views import logs_between, status_body, submit_body, wants_logs
from .scenarios import outcome_for
from .status_stream import status_events
from .streaming import SSE_HEADERS, TrackedStream

REQUEST_ID_HEADER = "x-fal-request-id"


def request_not_found() -> FakeError:
    """404 for status, stream and result."""
    return FakeError(404, {"detail": "Request not found"})


def cancel_not_found() -> FakeError:
    """404 for cancel, in the ``{"status": ...}`` shape of cancel answers."""
    return FakeError(404, {"status": "NOT_FOUND"})


class QueueEndpoints:
    """Handlers mounted under ``/queue``."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        """Request routes first; anything else POSTed is a submission."""
        prefix = "/{app:path}/requests/{request_id}"
        return [
            Route(f"{prefix}/status/stream", self.status_stream, methods=["GET"]),
            Route(f"{prefix}/status", self.status, methods=["GET"]),
            Route(f"{prefix}/cancel", self.cancel, methods=["PUT"]),
            Route(prefix, self.result, methods=["GET"]),
            Route("/{endpoint:path}", self.submit, methods=["POST"]),
        ]

    def _record(
        self, request: Request, not_found: Callable[[], FakeError] = request_not_found
    ) -> QueuedRequest:
        """Authorise, then find the request named by the URL, which must belong to its app."""
        app = parse_endpoint(request.path_params["app"])
        self.ctx.authorize(request, app.alias if app else None)
        if app is not None and app.path:
            raise detail(405, "Method Not Allowed: use owner/alias without the endpoint path")
        record = self.ctx.queue.get(request.path_params["request_id"])
        if app is None or record is None or record.endpoint.app_id != app.app_id:
            raise not_found()
        return record

    def _answer(self, record: QueuedRequest, body: object, status_code: int) -> Response:
        headers = {REQUEST_ID_HEADER: record.request_id}
        return JSONResponse(body, status_code, headers=headers)

    async def submit(self, request: Request) -> Response:
        """Create a request; its outcome is decided now and revealed at completion."""
        endpoint = parse_endpoint(request.path_params["endpoint"])
        self.ctx.authorize(request, endpoint.alias if endpoint else None)
        if endpoint is None:
            raise detail(404, "Application not found")
        check_request_timeout(request.headers)
        try:
            payload = await read_input(request)
        except InputError as problems:
            raise problems.as_fake_error() from None
        outcome = outcome_for(endpoint, payload, self.ctx.base_url(request))
        record = self.ctx.queue.submit(endpoint, outcome)
        webhook = request.query_params.get("fal_webhook")
        self.ctx.stats.record_submit(record.request_id, endpoint.full, request.headers, webhook)
        return self._answer(record, submit_body(record), 200)

    async def status(self, request: Request) -> Response:
        """202 while queued or running, 200 once completed; logs are cumulative."""
        record = self._record(request)
        snap = self.ctx.queue.snapshot(record, advance=True)
        wanted = wants_logs(request.query_params.get("logs"))
        logs = logs_between(record, 0, snap.log_count) if wanted else None
        code = 200 if snap.status == "COMPLETED" else 202
        return self._answer(record, status_body(record, snap, logs), code)

    async def status_stream(self, request: Request) -> Response:
        """Status changes as server-sent events, closing after ``COMPLETED``."""
        record = self._record(request)
        events = status_events(self.ctx, record, wants_logs(request.query_params.get("logs")))
        headers = {**SSE_HEADERS, REQUEST_ID_HEADER: record.request_id}
        media = "text/event-stream"
        return TrackedStream(events, self.ctx.stats, media_type=media, headers=headers)

    async def result(self, request: Request) -> Response:
        """The stored outcome, with its own status and headers, once completed."""
        record = self._record(request)
        if self.ctx.queue.snapshot(record).status != "COMPLETED":
            raise detail(400, "Request is still in progress")
        outcome = record.outcome
        headers = {**outcome.headers, REQUEST_ID_HEADER: record.request_id}
        if outcome.status_code == 200:  # billed results carry their units (fal-protocol §17)
            headers.update(self.ctx.billing.units_header(record.endpoint.app_id))
        return JSONResponse(outcome.body, outcome.status_code, headers=headers)

    async def cancel(self, request: Request) -> Response:
        """202 when stopped, 400 when already completed, 404 when unknown."""
        record = self._record(request, cancel_not_found)
        if self.ctx.queue.cancel(record):
            return self._answer(record, {"status": "CANCELLATION_REQUESTED"}, 202)
        return self._answer(record, {"status": "ALREADY_COMPLETED"}, 400)
