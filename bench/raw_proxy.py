"""The Python ceiling: the least a fal proxy in Python can do, as fast as Python does it.

Not a product and not falproxy: a benchmark anchor. asyncio protocols on uvloop, httptools
(llhttp) parsing both sides, no ASGI, no HTTP client library. Per client connection it
keeps one keep-alive upstream connection; it reads ``x-fal-target-url``, refuses any
target that is not https on an allowed fal host that the command line maps to a stub,
sends ``Authorization: Key $FAL_KEY`` instead of the client's, and relays the response
as raw bytes (the response parser only finds where each answer ends). Back-pressure is
passed on in both directions. What it leaves out is what falproxy's layers add:
policy, admission, limits, timeouts, events, error mapping; so the gap between the two
is the price of those layers plus the price of the libraries they sit on.

Deliberately narrow: one request in flight per connection (a pipelined request closes
the connection), request bodies only with Content-Length (chunked: 411), no upgrades.

Run: ``FAL_KEY=... python bench/raw_proxy.py PORT HOST=BASE_URL... [--cafile CA.pem]``
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
from typing import Any
from urllib.parse import urlsplit

import httptools
import uvloop

ROUTE = b"/api/fal/proxy"
FAL_DOMAINS = (b"fal.run", b"fal.ai", b"fal.media")  # a target host is one of these or under one
# Request headers passed upstream; everything else (cookies, the client's Authorization,
# hop-by-hop headers, x-fal-target-url itself) stays behind.
FORWARDED = frozenset({b"content-type", b"content-length", b"accept", b"user-agent"})
Upstream = tuple[str, int, str, "ssl.SSLContext | None"]  # host, port, path prefix, TLS


def reply(status: bytes, detail: bytes) -> bytes:
    body = b'{"detail":"' + detail + b'"}'
    return b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        status,
        len(body),
        body,
    )


class UpstreamSide(asyncio.Protocol):
    """The upstream connection: bytes go straight to the client; llhttp marks the end."""

    def __init__(self, client: ClientSide) -> None:
        self.client = client
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.client.transport.abort()

    def on_message_complete(self) -> None:
        self.client.response_done(self.parser.should_keep_alive())

    def pause_writing(self) -> None:  # upstream slow to take the body: stop reading the client
        self.client.transport.pause_reading()

    def resume_writing(self) -> None:
        self.client.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.upstream_lost(self)


class ClientSide(asyncio.Protocol):
    def __init__(self, upstreams: dict[bytes, Upstream], key: bytes) -> None:
        self.upstreams, self.key = upstreams, key
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: UpstreamSide | None = None
        self.upstream_for: Upstream | None = None
        self.pending: list[bytes] | None = None  # writes waiting for the upstream to connect
        self.busy = self.forwarding = False
        self.keep_alive = True
        # The request being read: path, target header, headers passed on, why refused.
        self.url = self.target = b""
        self.headers: list[bytes] = []
        self.refused: bytes | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # already answered 501 (or 404) by route()
            self.transport.close()
        except httptools.HttpParserError:
            self.local(b"400 Bad Request", b"malformed request", close=True)

    def on_message_begin(self) -> None:
        if self.busy:  # pipelined: out of scope for the anchor
            self.transport.abort()
        self.url, self.target, self.headers, self.refused = b"", b"", [], None
        self.busy, self.forwarding = True, False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"x-fal-target-url":
            if self.target:  # two targets: which one was meant is not for us to guess
                self.refused = name
            self.target = value
        elif name in (b"transfer-encoding", b"upgrade"):
            self.refused = name
        elif name in FORWARDED:
            self.headers.append(b"%s: %s\r\n" % (name, value))

    def on_headers_complete(self) -> None:
        upstream = self.route()
        if upstream is None:
            return
        up_host, up_port, prefix, _ = upstream
        parts = urlsplit(self.target)
        query = b"?" + parts.query if parts.query else b""
        head = b"%s %s%s%s HTTP/1.1\r\nhost: %s:%d\r\nauthorization: Key %s\r\n%s\r\n" % (
            self.parser.get_method(),
            prefix.encode(),
            parts.path or b"/",
            query,
            up_host.encode(),
            up_port,
            self.key,
            b"".join(self.headers),
        )
        self.forwarding = True
        if self.upstream is None or self.upstream_for != upstream:
            if self.upstream is not None:
                self.upstream.transport.close()
            self.upstream, self.upstream_for, self.pending = None, upstream, [head]
            asyncio.get_running_loop().create_task(self.connect(upstream))
        else:
            self.send(head)

    def route(self) -> Upstream | None:
        """The stub this request goes to, or None after answering it here."""
        if self.url.split(b"?", 1)[0] != ROUTE:
            self.local(b"404 Not Found", b"not found")
        elif self.refused == b"transfer-encoding":
            self.local(b"411 Length Required", b"only Content-Length bodies are relayed")
        elif self.refused == b"x-fal-target-url":
            self.local(b"400 Bad Request", b"one x-fal-target-url header only")
        elif self.refused == b"upgrade":
            self.local(b"501 Not Implemented", b"no upgrades here", close=True)
        else:
            parts = urlsplit(self.target)
            host = parts.netloc.lower()  # no userinfo, no port: the bare fal host only
            allowed = any(host == d or host.endswith(b"." + d) for d in FAL_DOMAINS)
            upstream = self.upstreams.get(host)
            if parts.scheme == b"https" and allowed and upstream is not None:
                return upstream
            self.local(b"403 Forbidden", b"target not allowed")
        return None

    def on_body(self, body: bytes) -> None:
        if self.forwarding:
            self.send(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if not self.forwarding:  # answered locally
            self.busy = False
            if not self.keep_alive:
                self.transport.close()

    def send(self, data: bytes) -> None:
        if self.pending is not None:
            self.pending.append(data)
        elif self.upstream is not None:
            self.upstream.transport.write(data)

    async def connect(self, upstream: Upstream) -> None:
        host, port, _, context = upstream
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: UpstreamSide(self),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context else None,
                ),
                timeout=10,
            )
        except (OSError, TimeoutError):
            self.pending = None
            self.local(b"502 Bad Gateway", b"upstream unreachable", close=True)
            return
        if self.transport.is_closing():
            protocol.transport.close()
            return
        self.upstream, pending, self.pending = protocol, self.pending or [], None
        protocol.transport.write(b"".join(pending))

    def response_done(self, upstream_keep_alive: bool) -> None:
        self.busy = False
        if not upstream_keep_alive and self.upstream is not None:
            self.upstream.transport.close()
        if not self.keep_alive:
            self.transport.close()

    def upstream_lost(self, side: UpstreamSide) -> None:
        if side is self.upstream:
            self.upstream = None
            if self.busy:  # cut mid-answer: the client cannot tell where it ended
                self.transport.close()

    def local(self, status: bytes, detail: bytes, *, close: bool = False) -> None:
        self.forwarding = False
        self.transport.write(reply(status, detail))
        if close:
            self.transport.close()

    def pause_writing(self) -> None:  # client slow to read: stop reading the upstream
        if self.upstream is not None:
            self.upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None:
            self.upstream.transport.close()


def parse_upstreams(items: list[str], cafile: str | None) -> dict[bytes, Upstream]:
    """``fal.run=http://127.0.0.1:9000/prefix`` -> host, port, prefix and a TLS context."""
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    found: dict[bytes, Upstream] = {}
    for item in items:
        fal_host, _, base = item.partition("=")
        parts = urlsplit(base)
        tls = parts.scheme == "https"
        if tls and context is None:
            context = ssl.create_default_context()
        port = parts.port or (443 if tls else 80)
        found[fal_host.encode()] = (
            parts.hostname or "",
            port,
            parts.path.rstrip("/"),
            context if tls else None,
        )
    return found


def main() -> None:
    argv = sys.argv[1:]
    cafile = None
    if "--cafile" in argv:
        at = argv.index("--cafile")
        cafile = argv[at + 1]
        del argv[at : at + 2]
    port, upstreams = int(argv[0]), parse_upstreams(argv[1:], cafile)
    key = os.environ["FAL_KEY"].encode()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: ClientSide(upstreams, key), "127.0.0.1", port, backlog=8192
        )
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
