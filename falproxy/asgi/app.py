"""``FalProxy``: the ASGI app, with the whole pipeline of one proxied call in order.

route -> target -> policy -> admission (identity, before_request, limit, key) -> body ->
relay -> event. Each step is a small function that
returns a value or raises ``ProxyError``; the handler catches it in one place and answers
``{"detail": ...}``. Nothing after the target step looks at the raw header again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import anyio

from falproxy.admission.gate import Admission, Gate
from falproxy.asgi.relay_http import Body, UpstreamClient, build_request, relay_http
from falproxy.asgi.websocket.session import serve_websocket
from falproxy.config.checks import authentication_warnings
from falproxy.config.settings import ProxyConfig
from falproxy.core.body import (
    ClientDisconnected,
    DeclaredBody,
    declared_body,
    read_body,
    stream_body,
)
from falproxy.core.cors import CorsPolicy
from falproxy.core.errors import (
    MethodNotAllowed,
    NotFound,
    ProxyError,
)
from falproxy.core.events import ProxyEvent, log_event
from falproxy.core.head import check_request_head
from falproxy.core.headers import upstream_request_headers
from falproxy.core.hooks import emit, send_reply
from falproxy.core.lifecycle import RelayResult, http_event
from falproxy.core.pipeline import check_method, route_path, target_from_headers
from falproxy.core.policy import MAX_TOKEN_BODY
from falproxy.core.targets import Target
from falproxy.core.types import Receive, Scope, Send
from falproxy.core.upstreams import UpstreamMap
from falproxy.ops.metrics import METRICS_CONTENT_TYPE, ProxyMetrics
from falproxy.ops.readiness import Readiness, ReadinessCheck

logger = logging.getLogger("falproxy")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"



class FalProxy:
    """An ASGI app that validates fal targets and relays calls with the server's key.

    Serve it directly (``uvicorn falproxy.standalone.cli:app_from_env --factory``), or mount it in
    another ASGI app. The upstream client opens on first use and closes on lifespan
    shutdown or :meth:`aclose`.
    """

    def __init__(self, config: ProxyConfig | None = None) -> None:
        self.config = config if config is not None else ProxyConfig.from_env()
        self.config.require_credential()
        self.policy = self.config.policy()
        self.upstreams = UpstreamMap(self.config.upstreams)
        self.upstream = UpstreamClient(self.config)
        self._routes = {self.config.route, self.config.route.rstrip("/") + "/"}
        self.readiness = Readiness()
        self.metrics = ProxyMetrics()
        self.gate = Gate(self.config, self.metrics)
        self.cors = CorsPolicy(self.config.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            # serves_path, as for HTTP: inside a plain mount the socket's path is "/".
            await serve_websocket(self, scope, receive, send, routed=self.serves_path(scope))

    async def aclose(self) -> None:
        """Close pooled upstream (and rate-limit storage) connections."""
        await self.upstream.aclose()
        await self.gate.aclose()

    def add_readiness_check(self, name: str, check: ReadinessCheck) -> None:
        """``/readyz`` answers 503 while ``check`` returns false (e.g. Redis unreachable)."""
        self.readiness.add_check(name, check)

    def startup_warnings(self) -> list[str]:
        """What an operator must hear once at start-up."""
        warnings = []
        if self.policy.allows_all_endpoints:
            warnings.append(
                "no endpoint allow-list: every fal app can be called through this proxy "
                "(set FALPROXY_ALLOWED_ENDPOINTS, e.g. 'fal-ai/flux/**')"
            )
        warnings.extend(f"upstream mapped: {line}" for line in self.upstreams.describe())
        warnings.extend(authentication_warnings(self.config))
        return warnings

    async def admit(self, scope: Scope, target: Target, app_id: str | None) -> Admission:
        """Identity, before_request, limit and key: the same for HTTP and WebSockets."""
        return await self.gate.admit(scope, target, app_id)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                for warning in self.startup_warnings():
                    logger.warning(warning)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def serves_path(self, scope: Scope) -> bool:
        """Whether ``scope`` asks for the proxy route.

        Inside a mount (``app.mount("/api/fal/proxy", proxy)``) the path relative to the
        mount is "/" and the route is the mount point itself, which counts as the route.
        """
        path = route_path(scope)
        if path in self._routes:
            return True
        root: str = scope.get("root_path", "")
        route = self.config.route.rstrip("/")
        return path == "/" and route != "" and root.rstrip("/").endswith(route)

    async def serve_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one proxied call whatever the path: for routes a framework matched."""
        if self.cors.enabled and self.cors.is_preflight(scope):
            await self.cors.preflight(scope, send)
        else:
            await self._proxy(scope, receive, self.cors.wrap(scope, send))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if self.serves_path(scope):
            await self.serve_call(scope, receive, send)
        elif path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await send_json(send, 200, {"status": "ok"})
        elif path == READY_PATH and scope["method"] in ("GET", "HEAD"):
            failing = await self.readiness.failures()
            body = {"status": "not ready", "failing": failing} if failing else {"status": "ready"}
            await send_json(send, 503 if failing else 200, body)
        elif path == METRICS_PATH and self.config.metrics and scope["method"] == "GET":
            await send_bytes(send, 200, self.metrics.exposition(), METRICS_CONTENT_TYPE)
        else:
            await send_error(send, NotFound())

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        app_id: str | None = None
        caller: str | None = None  # the identity's id, once known
        result = RelayResult()
        self.metrics.open_http.inc()
        try:
            check_method(method)
            check_request_head(scope["headers"])
            target = read_target(scope)
            app_id = self.policy.check(target)
            admission = await self.admit(scope, target, app_id)
            caller = admission.identity.id if admission.identity else None
            result.admitted = admission.reply is None
            if admission.reply is not None:
                result.status, result.outcome = admission.reply.status, "refused"
                await send_reply(send, admission.reply)
                return
            declared = declared_body(scope["headers"], self.config.max_body_bytes)
            body, body_done, length = await self._body(method, target, declared, receive, result)
            headers = upstream_request_headers(scope["headers"], admission.authorization, length)
            url = self.upstreams.url_for(target)
            request = build_request(self.upstream, method, url, headers, body)
            await relay_http(
                self.upstream,
                request,
                result,
                body_done=body_done,
                receive=receive,
                send=send,
                header_timeout=self.config.upstream_timeout,
            )
        except ProxyError as exc:
            result.status = exc.status
            result.outcome = exc.outcome
            caller = caller or exc.caller
            await send_error(send, exc)
        except ClientDisconnected:
            result.outcome = "client_gone"
        finally:
            self.metrics.open_http.dec()
            seconds = time.perf_counter() - started
            await self.finish(http_event(method, app_id, result, seconds, caller))

    async def finish(self, event: ProxyEvent) -> None:
        """One event per call (HTTP or WebSocket): access log, metrics, on_event hooks."""
        log_event(event, json_format=self.config.access_log_format == "json")
        self.metrics.observe(event)
        if self.config.on_event:
            await emit(self.config.on_event, event)

    async def _body(
        self,
        method: str,
        target: Target,
        declared: DeclaredBody,
        receive: Receive,
        result: RelayResult,
    ) -> tuple[Body, anyio.Event, int | None]:
        """The body to send, an event set once it is fully read, and its length."""
        done = anyio.Event()
        if self.policy.is_token_request(target):
            if method != "POST":
                raise MethodNotAllowed(headers={"allow": "POST"})
            raw = await read_body(receive, MAX_TOKEN_BODY, self.config.body_timeout)
            policed = self.policy.check_token_request(raw)
            done.set()
            result.bytes_up = len(policed)
            return policed, done, len(policed)
        if not declared.present:
            done.set()
            return None, done, declared.length
        chunks = stream_body(receive, self.config.max_body_bytes, self.config.body_timeout)
        stream = _counted(chunks, done, result)
        return stream, done, declared.length


async def _counted(
    chunks: AsyncIterator[bytes], done: anyio.Event, result: RelayResult
) -> AsyncIterator[bytes]:
    """Relay the body, counting it, and signal its end to the disconnect watcher."""
    async for chunk in chunks:
        result.bytes_up += len(chunk)
        yield chunk
    done.set()






def read_target(scope: Scope) -> Target:
    """The single ``x-fal-target-url`` header, parsed strictly."""
    return target_from_headers(scope["headers"])




async def send_json(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: ProxyError) -> None:
    """The one place a ``ProxyError`` becomes a response."""
    await send(
        {"type": "http.response.start", "status": error.status, "headers": error.response_headers()}
    )
    await send({"type": "http.response.body", "body": error.body()})


async def send_bytes(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})

