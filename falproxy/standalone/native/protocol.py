"""``NativeHttpProtocol``: one client connection of ``falproxy serve``, parsed with llhttp.

A connection serves its requests strictly one at a time, in order:

* **head**: bytes are fed to the parser up to the head's blank line only; the head is
  capped at ``MAX_REQUEST_HEAD_BYTES`` (431) and timed by ``header_timeout`` while it
  arrives (the same :class:`~falproxy.standalone.protocols.HeadWatch` as the guarded
  uvicorn protocols); a connection that sends nothing is timed too. A parse error is a
  JSON 400 and the connection closes.
* **upgrade**: a request with ``Upgrade`` is served by
  :func:`~falproxy.standalone.native.websocket.serve_upgrade`, which takes the connection
  (a WebSocket, or a JSON refusal); no request is handed to another parser for it.
* **hand-over**: in fake mode a ``/_fake`` HTTP path is given with the connection to the
  guarded uvicorn protocol, fed the exact bytes the client sent from that request on
  (:mod:`falproxy.standalone.native.framing`).
* **body**: fed per its framing into the request's bounded buffer; bytes past the end of
  the message are kept raw, and reading pauses while they (pipelined requests) or the
  body buffer pass the high-water mark.
* **response**: written by the :class:`~falproxy.standalone.native.exchange.NativeExchange`;
  once complete, the next pipelined request starts, or the keep-alive timer is armed.

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

from falproxy.asgi.app import FalProxy
from falproxy.core.errors import BadRequest, ProxyError
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES
from falproxy.core.types import Scope
from falproxy.standalone.native.app import Served, served_app
from falproxy.standalone.native.exchange import BODY_HIGH_WATER, NativeExchange
from falproxy.standalone.native.framing import chunked_stops, head_end, skip_empty_lines
from falproxy.standalone.native.response import STATUS_LINES, encode_defaults
from falproxy.standalone.native.websocket import serve_upgrade
from falproxy.standalone.protocols import (
    GuardedHttpToolsProtocol,
    HeadWatch,
    configured_header_timeout,
    refusal_bytes,
)

logger = logging.getLogger("falproxy.server")

# Raw bytes of later (pipelined) requests kept while one is served; reading pauses past it.
PIPELINE_HIGH_WATER: Final = 64 * 1024
# After answering a request whose body was not read to its end, keep reading (and
# discarding) this long before closing, so the client reads the answer instead of a reset
# (nginx's lingering close, RFC 9112 section 9.6).
LINGER_SECONDS: Final = 2.0
MALFORMED: Final = "Malformed HTTP request"

# Connection states.
_HEAD, _BODY, _WAIT, _LINGER, _DONE = range(5)
# Body framings of a request.
_NO_BODY, _LENGTH, _CHUNKED = range(3)

_SERVED: weakref.WeakKeyDictionary[Config, Served] = weakref.WeakKeyDictionary()


def _refusal(error: ProxyError, defaults: bytes) -> bytes:
    """A whole JSON refusal that closes the connection, written outside any call."""
    headers = [*error.response_headers(), (b"connection", b"close")]
    lines = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
    return STATUS_LINES[error.status] + defaults + lines + b"\r\n" + error.body()


class _Mismatch(Exception):
    """The parser framed a message differently from where feeding stopped (fail closed)."""


class NativeHttpProtocol(asyncio.Protocol):
    """uvicorn's HTTP protocol slot, filled with a direct llhttp front end for FalProxy."""

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
        self.proxy: FalProxy = served.proxy
        self._hands_over: Callable[[Scope], bool] | None = served.hands_over
        self.server_state = server_state
        self.app_state = app_state
        self.loop = _loop or asyncio.get_event_loop()
        timeout = self.header_timeout
        self._head = HeadWatch(
            self.loop,
            configured_header_timeout() if timeout is None else timeout,
            self._head_timed_out,
        )
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._parser = httptools.HttpRequestParser(self)
        self._state = _HEAD
        self._inbox: bytes | bytearray = b""  # received bytes not fed to the parser yet
        self._fed = 0  # bytes of the current head (at the start of the inbox) already fed
        self._tail = b""  # the last bytes fed of a chunked body
        self._framing = _NO_BODY
        self._left = 0  # Content-Length bytes still to feed
        self._exchange: NativeExchange | None = None
        self._keep_alive_timer: asyncio.TimerHandle | None = None
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

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self.server_state.connections.add(self)  # type: ignore[arg-type]
        self._server = get_local_addr(transport)
        self._client = get_remote_addr(transport)
        self._scheme = "https" if is_ssl(transport) else "http"
        self._head.start()  # a connection that never sends a byte is timed too

    def connection_lost(self, exc: Exception | None) -> None:
        self.server_state.connections.discard(self)
        self._state = _DONE
        self._head.done()
        self._cancel_timers()
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
        self.write_paused = False
        if self._exchange is not None:
            self._exchange.connection_lost()

    def eof_received(self) -> bool | None:
        return None  # like uvicorn: a half-closed connection is closed

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is under its low-water mark."""
        if self._drained is None:
            self._drained = self.loop.create_future()
        await self._drained

    def data_received(self, data: bytes) -> None:
        state = self._state
        if state in (_LINGER, _DONE):
            return  # discarded
        if self._keep_alive_timer is not None:
            self._keep_alive_timer.cancel()
            self._keep_alive_timer = None
        inbox = self._inbox
        if not inbox:
            self._inbox = data  # the usual case: whole requests in one read, no copy
        else:
            # Partial heads and pipelined requests accumulate: a bytearray keeps a head
            # dripped byte by byte linear, not quadratic, in copies.
            if isinstance(inbox, bytes):
                inbox = self._inbox = bytearray(inbox)
            inbox += data
        try:
            self._advance()
        except (httptools.HttpParserError, _Mismatch, UnicodeDecodeError):
            self._malformed()

    # --- uvicorn's server hooks ----------------------------------------------------------

    def shutdown(self) -> None:
        """Graceful shutdown: close now if idle, else after the current response."""
        self.keeps_alive = False
        if self._exchange is None and self._state != _DONE:
            self.transport.close()

    # --- reading requests ----------------------------------------------------------------

    def _advance(self) -> None:
        """Feed the parser as far as the current request allows."""
        while self._inbox:
            state = self._state
            if state == _HEAD:
                if not self._read_head():
                    return
            elif state == _BODY:
                self._read_body()
                if self._state == _BODY:
                    return
            else:  # _WAIT: later requests wait, raw, for the current response to end
                if len(self._inbox) > PIPELINE_HIGH_WATER:
                    self._pause_reading()
                return

    def _read_head(self) -> bool:
        """Parse the head at the start of the inbox; True once a request has started."""
        if self._fed == 0:
            self._inbox = skip_empty_lines(self._inbox)
            if not self._inbox:
                self._head.start()
                return False
        # Search only the new bytes (and the 3 before them): a dripped head stays linear.
        end = head_end(self._inbox, MAX_REQUEST_HEAD_BYTES, max(0, self._fed - 3))
        if end < 0:
            if len(self._inbox) >= MAX_REQUEST_HEAD_BYTES:
                self._refuse_head()
                return False
            self._feed(self._inbox[self._fed :])  # early 400 for garbage
            self._fed = len(self._inbox)
            self._head.start()
            return False
        head, self._inbox = self._inbox[:end], self._inbox[end:]
        with contextlib.suppress(httptools.HttpParserUpgrade):  # handed over below
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
            self._state = _DONE
            self.server_state.connections.discard(self)
            serve_upgrade(self.transport, scope, received, self)
            return
        if self._hands_over is not None and self._hands_over(scope):
            self._hand_over(bytes(head + self._inbox))
            return
        framing, length = _NO_BODY, 0
        if not self._message_done:
            framing, length = self._body_framing()
        http10 = scope["http_version"] == "1.0"
        exchange = NativeExchange(
            self,
            scope,
            keep_alive=not http10 and self._keep_alive,
            expect_continue=self._expect_continue,
            body_complete=self._message_done,
        )
        self._exchange = exchange
        self._framing, self._left, self._tail = framing, length, b""
        self._state = _WAIT if self._message_done else _BODY
        task = self.loop.create_task(self._serve(exchange))
        tasks = self.server_state.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def _scope(self, method: str, version: str) -> Scope:
        url = httptools.parse_url(self._url)
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

    def _body_framing(self) -> tuple[int, int]:
        """The framing llhttp accepted: chunked if any Transfer-Encoding (it refuses the
        rest), else the one Content-Length (it refuses duplicates and non-digits)."""
        length = -1
        for name, value in self._headers:
            if name == b"transfer-encoding":
                return _CHUNKED, 0
            if name == b"content-length":
                length = int(value)
        if length < 0:
            raise _Mismatch()
        return _LENGTH, length

    def _read_body(self) -> None:
        exchange = self._exchange
        assert exchange is not None
        inbox = self._inbox
        if self._framing == _LENGTH:
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
            self._state = _WAIT
            exchange.end_body()
            if exchange.response_complete:
                self._next_request(exchange)
        elif len(exchange.body) > BODY_HIGH_WATER:
            self._pause_reading()

    def _feed(self, data: bytes | bytearray) -> None:
        if data:
            self._parser.feed_data(data)

    # --- parser callbacks (llhttp) -------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._state != _HEAD:
            raise _Mismatch()  # a message began past where this one should have ended
        self._headers_done = self._message_done = self._upgrade = False
        self._url = b""
        self._headers = []
        self._expect_continue = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
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

    async def _serve(self, exchange: NativeExchange) -> None:
        try:
            await self.proxy.serve_http(exchange)
        except Exception:
            logger.exception("error serving a request")
        finally:
            if not exchange.response_complete and not exchange.lost:
                # Never finished (the upstream broke off, or an error): the client must
                # see a truncated response, never a complete-looking one.
                if not exchange.response_started:
                    self.write(_refusal(ProxyError(), self.default_headers()))
                exchange.flush_head()
                self._state = _DONE
                self.transport.close()

    def response_done(self, exchange: NativeExchange) -> None:
        """The response is complete: serve the next request, or close."""
        self.server_state.total_requests += 1
        if exchange.closes:
            if exchange.body_complete:
                self._state = _DONE
                self.transport.close()
            else:
                self._linger()
            return
        if self._state == _WAIT:
            self._next_request(exchange)
        # _BODY: the body is still arriving; the next request starts once it has.

    def _next_request(self, exchange: NativeExchange) -> None:
        if self._exchange is exchange:
            self._exchange = None
        self._state = _HEAD
        self._message_done = False
        self._resume_reading()
        if not self.keeps_alive:
            self._state = _DONE
            self.transport.close()
        elif self._inbox:
            try:
                self._advance()
            except (httptools.HttpParserError, _Mismatch, UnicodeDecodeError):
                self._malformed()
        else:
            self._keep_alive_timer = self.loop.call_later(
                self.config.timeout_keep_alive, self._keep_alive_expired
            )

    def write(self, data: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(data)

    def default_headers(self) -> bytes:
        """uvicorn's default headers (Date), refreshed by the server once a second."""
        return _encoded_defaults(self.server_state.default_headers)

    def body_drained(self) -> None:
        """The relay took the buffered body: read on unless later requests fill the inbox."""
        if self._reading_paused and self._state == _BODY:
            self._resume_reading()

    # --- endings -------------------------------------------------------------------------

    def _malformed(self) -> None:
        """A request llhttp refuses: 400 JSON, then close (its framing cannot be trusted)."""
        self._head.done()
        exchange = self._exchange
        self._inbox = b""
        if exchange is not None and not exchange.response_complete:
            # The call in flight answers it (its body is unreadable) and the connection closes.
            self._state = _LINGER
            exchange.keep_alive = False
            exchange.fail_body(BadRequest(MALFORMED))
            return
        self._state = _DONE
        if not self.transport.is_closing():
            self.transport.write(_refusal(BadRequest(MALFORMED), self.default_headers()))
            self.transport.close()

    def _refuse_head(self) -> None:
        self._head.done()
        self._state = _DONE
        self.transport.write(refusal_bytes())
        self.transport.close()

    def _head_timed_out(self) -> None:
        self._head.done()
        if self._state == _HEAD and self._exchange is None and not self.transport.is_closing():
            self._state = _DONE
            self.transport.close()  # like nginx's client_header_timeout: no answer, just close

    def _keep_alive_expired(self) -> None:
        self._keep_alive_timer = None
        if self._state == _HEAD and not self._inbox and not self.transport.is_closing():
            self._state = _DONE
            self.transport.close()

    def _linger(self) -> None:
        """Answered before the body was read: stop writing, drain what comes, then close."""
        self._state = _LINGER
        self._inbox = b""
        self._resume_reading()
        transport = self.transport
        if transport.can_write_eof():
            transport.write_eof()
            self._linger_timer = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._keep_alive_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._keep_alive_timer = self._linger_timer = None

    def _pause_reading(self) -> None:
        if not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()

    # --- hand-over -----------------------------------------------------------------------

    def _hand_over(self, data: bytes) -> None:
        """Give the connection to the guarded uvicorn protocol, from this request on."""
        self._resume_reading()
        self._cancel_timers()
        self._head.done()
        self._state = _DONE
        self._inbox = b""
        self.server_state.connections.discard(self)
        successor = GuardedHttpToolsProtocol(
            self.config, self.server_state, self.app_state, _loop=self.loop
        )
        successor.connection_made(self.transport)
        self.transport.set_protocol(successor)
        successor.data_received(data)


_DEFAULTS_CACHE: list[Any] = [None, b""]


def _encoded_defaults(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The encoded default headers, re-encoded only when uvicorn replaced the list."""
    if _DEFAULTS_CACHE[0] is not headers:
        _DEFAULTS_CACHE[0] = headers
        _DEFAULTS_CACHE[1] = encode_defaults(headers)
    encoded: bytes = _DEFAULTS_CACHE[1]
    return encoded
