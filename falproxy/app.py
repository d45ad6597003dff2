"""``FalProxy``: the ASGI app, with the whole pipeline of one proxied call in order.

route -> target -> policy -> body -> key -> relay. Each step is a small function that
returns a value or raises ``ProxyError``; the handler catches it in one place and answers
``{"detail": ...}``. Nothing after the target step looks at the raw header again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import anyio

from falproxy.body import ClientDisconnected, DeclaredBody, declared_body, read_body, stream_body
from falproxy.config import ProxyConfig
from falproxy.errors import (
    ConfigError,
    InvalidTarget,
    MethodNotAllowed,
    MissingTarget,
    NotFound,
    ProxyError,
)
from falproxy.events import ProxyEvent, log_event
from falproxy.headers import TARGET_HEADER, upstream_request_headers
from falproxy.policy import MAX_TOKEN_BODY, Policy
from falproxy.relay_http import Body, RelayResult, UpstreamClient, build_request, relay_http
from falproxy.request_limits import check_request_head
from falproxy.targets import Target, parse_target_header
from falproxy.types import Receive, Scope, Send
from falproxy.upstreams import UpstreamMap

logger = logging.getLogger("falproxy")

# The methods fal's clients use (fal-protocol.md section 13); DELETE is harmless.
PROXIED_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})
_ALLOW_HEADER = {"allow": ", ".join(sorted(PROXIED_METHODS))}
HEALTH_PATH = "/healthz"


class FalProxy:
    """An ASGI app that validates fal targets and relays calls with the server's key.

    Serve it directly (``uvicorn falproxy.cli:app_from_env --factory``), or mount it in
    another ASGI app. The upstream client opens on first use and closes on lifespan
    shutdown or :meth:`aclose`.
    """

    def __init__(self, config: ProxyConfig | None = None) -> None:
        self.config = config if config is not None else ProxyConfig.from_env()
        if self.config.credential is None:
            raise ConfigError("no fal credential: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET)")
        self._authorization = self.config.credential.authorization
        self.policy = Policy(
            self.config.allowed_urls,
            self.config.allowed_endpoints,
            self.config.max_token_expiration,
        )
        self.upstreams = UpstreamMap(self.config.upstreams)
        self.upstream = UpstreamClient(self.config)
        self._routes = {self.config.route, self.config.route.rstrip("/") + "/"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def aclose(self) -> None:
        """Close pooled upstream connections."""
        await self.upstream.aclose()

    def startup_warnings(self) -> list[str]:
        """What an operator must hear once at start-up."""
        warnings = []
        if self.policy.allows_all_endpoints:
            warnings.append(
                "no endpoint allow-list: every fal app can be called through this proxy "
                "(set FALPROXY_ALLOWED_ENDPOINTS, e.g. 'fal-ai/flux/**')"
            )
        warnings.extend(f"upstream mapped: {line}" for line in self.upstreams.describe())
        return warnings

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

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = route_path(scope)
        if path in self._routes:
            await self._proxy(scope, receive, send)
        elif path == HEALTH_PATH and scope["method"] in ("GET", "HEAD"):
            await send_json(send, 200, {"status": "ok"})
        else:
            await send_error(send, NotFound())

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        app_id: str | None = None
        result = RelayResult()
        try:
            check_method(method)
            check_request_head(scope["headers"])
            target = read_target(scope)
            app_id = self.policy.check(target)
            declared = declared_body(scope["headers"], self.config.max_body_bytes)
            body, body_done, length = await self._body(method, target, declared, receive, result)
            headers = upstream_request_headers(scope["headers"], self._authorization, length)
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
            result.outcome = "upstream_error" if exc.status >= 500 else "refused"
            await send_error(send, exc)
        except ClientDisconnected:
            result.outcome = "client_gone"
        finally:
            log_event(http_event(method, app_id, result, time.perf_counter() - started))

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


def route_path(scope: Scope) -> str:
    """The request path relative to where the app is mounted."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def check_method(method: str) -> None:
    if method not in PROXIED_METHODS:
        raise MethodNotAllowed(headers=_ALLOW_HEADER)


def read_target(scope: Scope) -> Target:
    """The single ``x-fal-target-url`` header, parsed strictly."""
    values = [value for name, value in scope["headers"] if name == TARGET_HEADER]
    if not values:
        raise MissingTarget()
    if len(values) > 1:
        raise InvalidTarget("Exactly one x-fal-target-url header is allowed")
    return parse_target_header(values[0])


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


def http_event(method: str, app_id: str | None, result: RelayResult, seconds: float) -> ProxyEvent:
    return ProxyEvent(
        kind="http",
        method=method,
        app_id=app_id,
        status=result.status,
        outcome=result.outcome,
        bytes_up=result.bytes_up,
        bytes_down=result.bytes_down,
        duration_seconds=seconds,
        first_byte_seconds=result.first_byte_seconds,
        request_id=result.request_id,
    )
