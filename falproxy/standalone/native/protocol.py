"""``NativeHttpProtocol``: one client connection of ``falproxy serve``, parsed with llhttp.

The connection is a :class:`~falproxy.wire.states.Machine` over the server table of
:mod:`falproxy.wire.states`; this class owns it and is the only one that fires events.
Requests are served strictly one at a time, in order:

* **head** (``IDLE``/``HEAD``): bytes are fed to the strict parser up to the head's blank
  line only; the head is capped at ``MAX_REQUEST_HEAD_BYTES`` (431) and timed by
  ``header_timeout`` (shorter near the connection cap); a connection that sends nothing
  is timed too. A parse error is a JSON 400 and the connection closes.
* **body** (``BODY``): fed per its framing into the request's bounded buffer; bytes past
  the end of the message stay raw, and reading pauses while they (pipelined requests) or
  the body buffer pass the high-water mark.
* **response** (``RESPONDING``): written by the
  :class:`~falproxy.standalone.native.exchange.NativeExchange`; pipelined bytes wait.
  Once complete, the next request starts only when the client has read the response
  (``FLUSHING`` until the transport drains), so a client that pipelines and never reads
  is held by its own socket buffers, not by the proxy's memory.
* **upgrade** (``UPGRADED``): a request with ``Upgrade`` is served by
  :func:`~falproxy.standalone.native.websocket.serve_upgrade`, which takes the connection
  (a WebSocket, or a JSON refusal). In fake mode, HTTP requests for the fake fal's
  ``/_fake`` paths are parsed here like any other and served by the fake through
  :mod:`falproxy.standalone.native.asgi_http`. No request is handed to another parser.

uvicorn's bookkeeping is kept: ``server_state.connections``/``tasks`` (graceful shutdown
waits for them), ``total_requests``, ``default_headers`` (Date) and ``shutdown()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, Final

import httptools
from uvicorn.config import Config
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl
from uvicorn.server import ServerState

from falproxy.core.errors import BadRequest, ProxyError
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES
from falproxy.core.types import ASGIApp, Scope
from falproxy.proxy import Proxy, serve_http
from falproxy.relay.exchange import serve_call
from falproxy.standalone.capacity import PRESSED_HEAD_SECONDS, ConnectionCap, Shed
from falproxy.standalone.native.app import Served, served_app
from falproxy.standalone.native.asgi_http import serve_asgi_http
from falproxy.standalone.native.exchange import BODY_HIGH_WATER, NativeExchange
from falproxy.standalone.native.websocket import serve_upgrade
from falproxy.standalone.protocols import (
    HeadWatch,
    configured_header_timeout,
    refusal_bytes,
    worker_connection_cap,
)
from falproxy.wire.boundaries import chunked_stops, head_end, skip_empty_lines
from falproxy.wire.framing import Framing, request_framing
from falproxy.wire.parsers import request_parser
from falproxy.wire.states import HEADLESS, Machine, Server, ServerEvent, server_machine
from falproxy.wire.writer import closing_answer, header_lines

logger = logging.getLogger("falproxy.server")

# Raw bytes of later (pipelined) requests kept while one is served; reading pauses past it.
PIPELINE_HIGH_WATER: Final = 64 * 1024
# After answering a request whose body was not read to its end, keep reading (and
# discarding) this long before closing, so the client reads the answer instead of a reset
# (nginx's lingering close, RFC 9112 section 9.6).
LINGER_SECONDS: Final = 2.0
MALFORMED: Final = "Malformed HTTP request"
# Errors of a request llhttp (or the check that it stopped where feeding stopped) refuses.
_UNPARSABLE: Final = (httptools.HttpParserError, ValueError, UnicodeDecodeError)

_SERVED: weakref.WeakKeyDictionary[Config, Served] = weakref.WeakKeyDictionary()


def _refusal(error: ProxyError, defaults: bytes) -> bytes:
    """A whole JSON refusal that closes the connection, written outside any call."""
    return closing_answer(error.status, error.response_headers(), error.body(), defaults)


class _Mismatch(ValueError):
    """The parser framed a message differently from where feeding stopped (fail closed)."""


class NativeHttpProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol slot, filled with a direct llhttp front end for the proxy."""

    header_timeout: ClassVar[float | None] = None  # None: FALPROXY_HEADER_TIMEOUT

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        served = _SERVED.get(config)
        if served is None:
            served = _SERVED[config] = served_app(config.loaded_app)
        self.config = config
        # Read untyped: uvicorn annotates it int, but embedders pass seconds as floats, and
        # compiled code (setup.py) checks a declared type on every read.
        uvicorn_config: Any = config
        self._keep_alive_seconds = float(uvicorn_config.timeout_keep_alive)
        self.proxy: Proxy = served.proxy
        self._hands_over: Callable[[Scope], bool] | None = served.hands_over
        self._beside: ASGIApp | None = served.beside
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        timeout = self.header_timeout
        self._head_seconds = configured_header_timeout() if timeout is None else timeout
        self._head = HeadWatch(self.loop, self._head_seconds, self._head_timed_out)
        self._cap: ConnectionCap = worker_connection_cap(server_state)
        self._state: Machine[Server, ServerEvent] = server_machine()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._parser = request_parser(self)
        self._inbox: bytes | bytearray = b""  # received bytes not fed to the parser yet
        self._fed = 0  # bytes of the current head (at the start of the inbox) already fed
        self._tail = b""  # the last bytes fed of a chunked body
        self._framing = Framing.NONE
        self._left = 0  # Content-Length bytes still to feed
        self._exchange: NativeExchange | None = None
        # Keep-alive: armed once per idle stretch, not per request; when it fires it checks
        # how long the connection has really been idle (since _idle_since) and re-arms.
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_since = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None  # FLUSHING: unread answers
        self._linger_timer: asyncio.TimerHandle | None = None
        self.keeps_alive = True  # False once the server shuts down
        self.write_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._reading_paused = False
        self._server: tuple[str, int | None] | None = None
        self._client: tuple[str, int] | None = None
        self._scheme = "http"
        # Per message, set by the parser callbacks.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._expect_continue = False
        self._headers_done = False
        self._message_done = False
        self._upgrade = False
        self._keep_alive = True

    @property
    def state(self) -> Server:
        return self._state.state

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        try:
            self._cap.admit(self, self._shed)
        except Shed:
            self._state.fire(ServerEvent.CLOSE)
            transport.abort()
            return
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self._server = get_local_addr(transport)
        self._client = get_remote_addr(transport)
        self._scheme = "https" if is_ssl(transport) else "http"
        self._arm_head()  # a connection that never sends a byte is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._cap.leave(self)
        self._state.fire(ServerEvent.CLOSE)
        self._head.done()
        self._cancel_timers()
        self.write_paused = False
        self._wake_drain()
        if self._exchange is not None:
            self._exchange.connection_lost()

    def eof_received(self) -> bool | None:
        return None  # like uvicorn: a half-closed connection is closed

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_drain()
        if self.state is Server.FLUSHING:
            self._cancel_timers()
            self._state.fire(ServerEvent.DRAINED)
            self._ready_for_next()

    async def drain(self) -> None:
        """Wait until the transport's write buffer is under its low-water mark."""
        if self._drained is None:
            self._drained = self.loop.create_future()
        await self._drained

    def data_received(self, data: bytes) -> None:
        if self.state in (Server.LINGER, Server.CLOSED, Server.UPGRADED):
            return  # discarded
        inbox = self._inbox
        if not inbox:
            self._inbox = data  # the usual case: whole requests in one read, no copy
        else:
            # Partial heads and pipelined requests accumulate: a bytearray keeps a head
            # dripped byte by byte linear, not quadratic, in copies.
            if isinstance(inbox, bytes):
                inbox = self._inbox = bytearray(inbox)
            inbox += data
        self._advance_safely()

    # --- uvicorn's server hooks ----------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the current response."""
        self.keeps_alive = False
        if self.state in HEADLESS or self.state is Server.FLUSHING:
            self._close()

    # --- reading requests ----------------------------------------------------------------

    def _advance_safely(self) -> None:
        try:
            self._advance()
        except _UNPARSABLE:
            self._malformed()

    def _advance(self) -> None:
        """Feed the parser as far as the current state allows."""
        while self._inbox:
            state = self.state
            if state in HEADLESS:
                if not self._read_head():
                    return
            elif state is Server.BODY:
                self._read_body()
                if self.state is Server.BODY:
                    return
            else:  # later requests wait, raw, until this one is answered and read
                if len(self._inbox) > PIPELINE_HIGH_WATER:
                    self._pause_reading()
                return

    def _read_head(self) -> bool:
        """Parse the head at the start of the inbox; True once a request has started."""
        if self._fed == 0:
            self._inbox = skip_empty_lines(self._inbox)
            if not self._inbox:
                self._arm_head()
                return False
        # Search only the new bytes (and the 3 before them): a dripped head stays linear.
        end = head_end(self._inbox, MAX_REQUEST_HEAD_BYTES, max(0, self._fed - 3))
        if end < 0:
            if len(self._inbox) >= MAX_REQUEST_HEAD_BYTES:
                self._refuse_head()
                return False
            self._state.fire(ServerEvent.HEAD_BYTES)
            self._feed(self._inbox[self._fed :])  # early 400 for garbage
            self._fed = len(self._inbox)
            self._arm_head()
            return False
        head, self._inbox = self._inbox[:end], self._inbox[end:]
        with contextlib.suppress(httptools.HttpParserUpgrade):  # served below (websocket.py)
            self._feed(head[self._fed :])
        self._fed = 0
        self._head.done()
        if not self._headers_done:
            raise _Mismatch()
        self._start_request(head)
        return True

    def _start_request(self, head: bytes | bytearray) -> None:
        parser = self._parser
        scope = self._scope(parser.get_method().decode("ascii"), parser.get_http_version())
        if self._upgrade:  # WebSockets are served natively (websocket.py), never handed over
            received, self._inbox = bytes(self._inbox), b""
            self._cancel_timers()
            self._head.done()
            self._state.fire(ServerEvent.UPGRADE)
            self.server_state.connections.discard(self)
            socket = serve_upgrade(self.transport, scope, received, self)
            if socket is None:
                self._cap.leave(self)
            else:  # an open socket holds its place under the cap, never shed, until it ends
                self._cap.busy(self)
                socket.add_done_callback(lambda _: self._cap.leave(self))
            return
        beside = None
        if self._hands_over is not None and self._hands_over(scope):
            beside = self._beside  # the fake fal's own paths, on this same parser
        framing, length = Framing.NONE, 0
        if not self._message_done:
            framing, length = request_framing(self._headers)
        exchange = NativeExchange(
            self,
            scope,
            keep_alive=scope["http_version"] != "1.0" and self._keep_alive,
            expect_continue=self._expect_continue,
            body_complete=self._message_done,
            send_timeout=self.proxy.config.stream_idle_timeout,
        )
        self._exchange = exchange
        self._framing, self._left, self._tail = framing, length, b""
        self._cap.busy(self)
        event = ServerEvent.BODILESS_REQUEST if self._message_done else ServerEvent.REQUEST
        self._state.fire(event)
        task = self.loop.create_task(self._serve(exchange, beside))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _scope(self, method: str, version: str) -> Scope:
        # Any: httptools' stubs say bytes, but a part the URL lacks is None (and compiled
        # code checks a declared type on every read).
        url: Any = httptools.parse_url(self._url)
        raw_path: bytes = url.path or b"/"
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version,
            "server": self._server,
            "client": self._client,
            "scheme": self._scheme,
            "root_path": "",
            "method": method,
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": self._headers,
            "state": self.app_state.copy(),
        }

    def _read_body(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        inbox = self._inbox
        if self._framing is Framing.LENGTH:
            size = min(self._left, len(inbox))
            self._feed(inbox[:size] if size < len(inbox) else inbox)
            self._left -= size
            self._inbox = inbox[size:]
            if self._left == 0 and not self._message_done:
                raise _Mismatch()
        else:
            fed = 0
            for stop in chunked_stops(self._tail, inbox):
                if stop > fed:
                    self._feed(inbox[fed:stop])
                    fed = stop
                    if self._message_done:
                        break
            if not self._message_done and fed < len(inbox):
                self._feed(inbox[fed:])
                fed = len(inbox)
            self._tail = (self._tail + inbox[:fed])[-3:]
            self._inbox = inbox[fed:]
        if self._message_done:
            self._state.fire(ServerEvent.BODY_END)
            exchange.end_body()
            if exchange.response_complete:
                self._after_response(exchange)
        elif len(exchange.body) > BODY_HIGH_WATER:
            self._pause_reading()

    def _feed(self, data: bytes | bytearray) -> None:
        if data:
            self._parser.feed_data(data)

    # --- parser callbacks (llhttp) -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.state not in HEADLESS:
            raise _Mismatch()  # a message began past where this one should have ended
        self._headers_done = self._message_done = self._upgrade = False
        self._url = b""
        self._headers = []
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if value[-1:] in b" \t":  # RFC 9110 section 5.5: trailing OWS is not the value
            value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Read here: llhttp resets both flags once the message is complete.
        parser = self._parser
        self._headers_done = True
        self._upgrade = parser.should_upgrade()
        self._keep_alive = parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and not exchange.response_complete:
            exchange.feed_body(body)

    def on_message_complete(self) -> None:
        self._message_done = True

    # --- serving -------------------------------------------------------------------------

    async def _serve(self, exchange: NativeExchange, beside: ASGIApp | None) -> None:
        try:
            if beside is None:
                await serve_call(serve_http(self.proxy, exchange), exchange)
            else:
                await serve_asgi_http(beside, exchange)
        except Exception:
            logger.exception("error serving a request")
        finally:
            if not exchange.response_complete and not exchange.lost:
                # Never finished (the upstream broke off, the client stalled, an error):
                # the client must see a truncated response, never a complete-looking one.
                if not exchange.response_started:
                    self.write(_refusal(ProxyError(), self.default_headers()))
                exchange.flush_head()
                self._close()

    def response_done(self, exchange: NativeExchange) -> None:
        """The exchange wrote its whole response."""
        self.server_state.total_requests += 1
        if exchange.closes:
            if exchange.body_complete:
                self._close()
            else:
                self._linger()
        elif self.state is Server.RESPONDING:
            self._after_response(exchange)
        # BODY: the body is still arriving (the response kept the connection alive only
        # if the body had ended when it started, so this cannot last); see _read_body.

    def _after_response(self, exchange: NativeExchange) -> None:
        if self._exchange is exchange:
            self._exchange = None
        self._message_done = False
        if not self.keeps_alive:
            self._close()
        elif self.write_paused:
            # The client has not read this response: the next request waits for it, at most
            # the stream idle timeout, and the connection may be shed like an idle one.
            self._state.fire(ServerEvent.WRITE_BLOCKED)
            self._pause_reading()
            self._cap.headless(self, self._shed)
            self._flush_timer = self.loop.call_later(
                self.proxy.config.stream_idle_timeout, self._flush_expired
            )
        else:
            self._state.fire(ServerEvent.KEEP_ALIVE)
            self._ready_for_next()

    def _ready_for_next(self) -> None:
        """IDLE again: serve a pipelined request, or wait (timed) for the next one."""
        self._cap.headless(self, self._shed)
        self._resume_reading()
        if self._inbox:
            self._advance_safely()
        else:
            self._idle_since = self.loop.time()
            if self._idle_timer is None:
                self._idle_timer = self.loop.call_later(
                    self._keep_alive_seconds, self._keep_alive_expired
                )

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def default_headers(self) -> bytes:
        """uvicorn's default headers (Date), refreshed by the server once a second."""
        return _encoded_defaults(self.server_state.default_headers)

    def body_drained(self) -> None:
        """The relay took the buffered body: read on unless later requests fill the inbox."""
        if self._reading_paused and self.state is Server.BODY:
            self._resume_reading()

    # --- endings -------------------------------------------------------------------------

    def _close(self) -> None:
        self._state.fire(ServerEvent.CLOSE)
        self._head.done()
        if not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection and whatever it has not sent (a client that stopped reading)."""
        self._state.fire(ServerEvent.CLOSE)
        self.transport.abort()

    def _shed(self) -> None:
        """Closed to make room under the connection cap (no complete head, or an answer its
        client does not read: dropped with it)."""
        if self.state is Server.FLUSHING:
            self.abort()
        else:
            self._close()

    def _flush_expired(self) -> None:
        self._flush_timer = None
        if self.state is Server.FLUSHING:
            self.abort()  # the client read nothing of its answer for the idle timeout

    def _malformed(self) -> None:
        """A request llhttp refuses: 400 JSON, then close (its framing cannot be trusted)."""
        self._head.done()
        exchange = self._exchange
        self._inbox = b""
        if exchange is not None and not exchange.response_complete:
            # The call in flight answers it (its body is unreadable) and the connection closes.
            self._state.fire(ServerEvent.LINGER)
            exchange.keep_alive = False
            exchange.fail_body(BadRequest(MALFORMED))
            return
        self.write(_refusal(BadRequest(MALFORMED), self.default_headers()))
        self._close()

    def _refuse_head(self) -> None:
        self.write(refusal_bytes())
        self._close()

    def _arm_head(self) -> None:
        seconds = PRESSED_HEAD_SECONDS if self._cap.pressed else self._head_seconds
        self._head.start(min(seconds, self._head_seconds))

    def _head_timed_out(self) -> None:
        self._head.done()
        if self.state in HEADLESS and not self.transport.is_closing():
            self._close()  # like nginx's client_header_timeout: no answer, just close

    def _keep_alive_expired(self) -> None:
        self._idle_timer = None
        if self.state is not Server.IDLE or self._inbox or self.transport.is_closing():
            return  # busy: the next idle stretch arms the timer again
        left = self._idle_since + self._keep_alive_seconds - self.loop.time()
        if left > 0:  # requests came and went since it was armed
            self._idle_timer = self.loop.call_later(left, self._keep_alive_expired)
        else:
            self._close()

    def _linger(self) -> None:
        """Answered before the body was read: stop writing, drain what comes, then close."""
        if self.state is not Server.LINGER:  # a malformed body entered it already
            self._state.fire(ServerEvent.LINGER)
        self._inbox = b""
        self._resume_reading()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._idle_timer, self._flush_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = self._flush_timer = self._linger_timer = None

    def _wake_drain(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()


_DEFAULTS_CACHE: list[Any] = [None, b""]


def _encoded_defaults(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The encoded default headers, re-encoded only when uvicorn replaced the list."""
    if _DEFAULTS_CACHE[0] is not headers:
        _DEFAULTS_CACHE[0] = headers
        _DEFAULTS_CACHE[1] = header_lines(headers)
    encoded: bytes = _DEFAULTS_CACHE[1]
    return encoded
