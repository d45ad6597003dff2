"""``FalProxy``: the ASGI front end. It does only ASGI I/O; every decision is the core's.

route -> (ops endpoint | CORS preflight | proxied call). A proxied call is admitted by
the shared :class:`~falproxy.admission.pipeline.Pipeline` (method, head, host, target,
policy, identity, hooks, limits, key, body plan), then its body is streamed up and the
answer streamed down by :mod:`falproxy.asgi.relay_http`. Every answer the proxy writes
itself goes through :func:`send_answer`; every call ends in one event via the
:class:`~falproxy.ops.calls.CallLog`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import anyio

from falproxy.admission.base import ProxyBase
from falproxy.admission.pipeline import Admitted
from falproxy.asgi.body import prefetch, read_body, stream_body
from falproxy.asgi.relay_http import Body, UpstreamClient, build_request, relay_http
from falproxy.asgi.responses import send_answer, with_cors
from falproxy.asgi.websocket.session import serve_websocket
from falproxy.config.checks import authentication_warnings
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.body import BodyClock, BodyKind
from falproxy.core.errors import ClientDisconnected, NotFound, ProxyError
from falproxy.core.headers import upstream_request_headers
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE, FalCredential
from falproxy.core.lifecycle import HTTP, CallRecord, Phase
from falproxy.core.pipeline import Incoming, route_path
from falproxy.core.types import Receive, Scope, Send
from falproxy.ops.calls import Call

logger = logging.getLogger("falproxy")
FAKE_CREDENTIAL = FalCredential(FAKE_CREDENTIAL_VALUE)


class FalProxy(ProxyBase):
    """An ASGI app that validates fal targets and relays calls with the server's key.

    Serve it directly (``falproxy serve``), or mount it in another ASGI app (see
    :mod:`falproxy.integrations.fastapi`). Besides the proxy route it answers the
    operational endpoints (``/healthz``, ``/readyz``, ``/metrics`` by default). The
    upstream client opens on first use and closes on lifespan shutdown or :meth:`aclose`.
    """

    def __init__(self, config: ProxyConfig | None = None) -> None:
        super().__init__(config)
        self.upstream = UpstreamClient(self.config)
        self._routes = {self.config.route, self.config.route.rstrip("/") + "/"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await serve_websocket(self, scope, receive, send, routed=self.serves_path(scope))
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def aclose(self) -> None:
        """Close pooled upstream (and rate-limit storage) connections."""
        await self.upstream.aclose()
        await self.pipeline.aclose()

    def startup_warnings(self) -> list[str]:
        """What an operator must hear once at start-up."""
        if self.config.credential == FAKE_CREDENTIAL:
            return []  # the fake spends nothing: an open allow-list and mapped hosts are normal
        warnings = []
        if self.pipeline.policy.allows_all_endpoints:
            warnings.append(
                "no endpoint allow-list: every fal app can be called through this proxy "
                "(set FALPROXY_ALLOWED_ENDPOINTS, e.g. 'fal-ai/flux/**')"
            )
        warnings.extend(f"upstream mapped: {line}" for line in self.pipeline.upstreams.describe())
        warnings.extend(authentication_warnings(self.config))
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

    async def serve_ops(self, scope: Scope, send: Send) -> bool:
        """Answer ``scope`` if it asks for an operational endpoint; False if it does not."""
        endpoint = self.ops.match(route_path(scope))
        if endpoint is None:
            return False
        await send_answer(send, await self.ops.answer(endpoint, scope["method"], scope["headers"]))
        return True

    async def serve_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one proxied call whatever the path: for routes a framework matched."""
        cors = self.pipeline.cors
        if cors.is_preflight(scope["method"], scope["headers"]):
            await send_answer(send, cors.preflight(scope["headers"]))
        else:
            await self._proxy(scope, receive, with_cors(send, cors, scope["headers"]))

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.serves_path(scope):
            await self.serve_call(scope, receive, send)
        elif not await self.serve_ops(scope, send):
            await send_answer(send, Answer.of_error(NotFound()))

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        call = self.calls.open(HTTP, method, scope["headers"])
        record = call.record
        try:
            incoming = Incoming(HTTP, method, scope["headers"], scope)
            admitted = await self.pipeline.admit(incoming, record)
            if isinstance(admitted, Answer):
                record.answer(admitted)
                await send_answer(send, admitted)
                return
            await self._relay(scope, receive, send, admitted, call)
        except ProxyError as exc:
            record.refuse(exc)
            await send_answer(send, Answer.of_error(exc))
        except ClientDisconnected:
            record.client_gone()
        finally:
            await self.calls.close(call)

    async def _relay(
        self, scope: Scope, receive: Receive, send: Send, admitted: Admitted, call: Call
    ) -> None:
        record = call.record
        body, body_done, length = await self._body(admitted, scope, receive, record)
        headers = upstream_request_headers(scope["headers"], admitted.authorization, length)
        call.span.inject(headers)
        request = build_request(self.upstream, scope["method"], admitted.url, headers, body)
        record.move(Phase.RELAYING)
        await relay_http(
            self.upstream,
            request,
            record,
            body_done=body_done,
            receive=receive,
            send=send,
            header_timeout=self.config.upstream_timeout,
        )

    async def _body(
        self, admitted: Admitted, scope: Scope, receive: Receive, record: CallRecord
    ) -> tuple[Body, anyio.Event, int | None]:
        """The body to send, an event set once it is fully read, and its length."""
        plan = admitted.body
        assert plan is not None  # HTTP calls always have a plan
        done = anyio.Event()
        clock = BodyClock(self.config.body_timeout, self.config.body_deadline, time.monotonic())
        if plan.kind is BodyKind.TOKEN:
            raw = await read_body(receive, plan.max_bytes, clock)
            policed = await self.pipeline.police_token(raw, scope, record)
            done.set()
            record.bytes_up = len(policed)
            return policed, done, len(policed)
        if plan.kind is BodyKind.NONE:
            done.set()
            return None, done, plan.length
        chunks = stream_body(receive, plan.max_bytes, clock)
        head = await prefetch(chunks)
        record.bytes_up = len(head.data)
        if head.ended:  # the whole body: refused or sent whole, never forwarded short
            done.set()
            return head.data, done, len(head.data)
        return _counted(head.data, chunks, done, record), done, plan.length


async def _counted(
    first: bytes, chunks: AsyncIterator[bytes], done: anyio.Event, record: CallRecord
) -> AsyncIterator[bytes]:
    """Relay the body, counting it, and signal its end to the disconnect watcher."""
    yield first
    async for chunk in chunks:
        record.bytes_up += len(chunk)
        yield chunk
    done.set()
