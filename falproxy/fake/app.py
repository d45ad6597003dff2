"""Assembly of the fake: one Starlette app serving fal's hosts as path prefixes.

``/run`` is ``fal.run``, ``/queue`` is ``queue.fal.run``, ``/rest`` is ``rest.fal.ai``,
``/api`` is ``api.fal.ai`` (pricing only) and ``/cdn`` is the fake's own storage and CDN; a
proxy's upstream mapping points each real host at its prefix. Middleware order, outermost
first: remember the mount point, record stats, CORS, stamp ``x-fal-request-id``.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount

from .billing import PricingEndpoints
from .cdn import CdnEndpoints
from .context import FakeContext
from .cors import CorsMiddleware
from .errors import FakeError, handle_fake_error, handle_http_exception
from .introspection import IntrospectionEndpoints
from .queue_api import QueueEndpoints
from .realtime import RealtimeEndpoints
from .request_id import RequestIdMiddleware
from .rest import RestEndpoints
from .run import RunEndpoints
from .stats import StatsMiddleware
from .urls import RememberRoot


def create_fake_app(
    *,
    speed: float = 1.0,
    expected_key: str | None = None,
    public_url: str | None = None,
    keepalive_seconds: float | None = None,
) -> Starlette:
    """Build a fake fal upstream.

    ``speed`` scales every nominal delay (0 = advance one state per status call);
    ``expected_key`` makes the fake accept only that key; ``public_url`` overrides the base of
    self-links (uploads, files, images); ``keepalive_seconds`` overrides the status stream's
    keep-alive period (default 15 s x speed). The context is at ``app.state.fake``.
    """
    ctx = FakeContext(speed, expected_key, public_url, keepalive_seconds)
    realtime = RealtimeEndpoints(ctx)
    pricing = PricingEndpoints(ctx.billing, ctx.authorize)
    routes = [
        *realtime.routes(),  # before the /run mount, which would take the socket path
        Mount("/run", routes=RunEndpoints(ctx).routes()),
        Mount("/queue", routes=QueueEndpoints(ctx).routes()),
        Mount("/rest", routes=RestEndpoints(ctx).routes()),
        Mount("/cdn", routes=CdnEndpoints(ctx).routes()),
        Mount("/api", routes=pricing.api_routes()),
        *pricing.control_routes(),
        *IntrospectionEndpoints(ctx).routes(),
    ]
    middleware = [
        Middleware(RememberRoot),
        Middleware(StatsMiddleware, stats=ctx.stats),
        Middleware(CorsMiddleware),
        Middleware(RequestIdMiddleware),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={FakeError: handle_fake_error, HTTPException: handle_http_exception},
    )
    app.state.fake = ctx
    app.state.realtime = realtime
    return app
