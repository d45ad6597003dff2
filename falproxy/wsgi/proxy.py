"""``SyncFalProxy``: the WSGI front end (Flask, Django under WSGI). It does only WSGI I/O.

A WSGI call is served by the relay every front end uses,
:func:`falproxy.relay.call.serve_route`, driven on the adapter's private event-loop
thread (:mod:`falproxy.wsgi.bridge`): the same admission, body plan, upstream client
(:class:`~falproxy.relay.upstream.UpstreamClient`, configured by
:class:`~falproxy.client.UpstreamSettings`: TLS trust including
``FALPROXY_UPSTREAM_CA_FILE``, timeouts, pool, resend rule), header rules and event as the
ASGI app and ``falproxy serve``. The WSGI thread keeps only its own I/O: it reads the
request body when the relay asks for it, with the socket timeouts that bound a WSGI read,
and writes the response as the relay hands it over, through a bounded window
(:mod:`falproxy.wsgi.handoff`, :mod:`falproxy.wsgi.call`).

Why drive the async relay rather than keep a sync relay (or split the relay into a sans-IO
core with a sync and an async driver, as httpx's ``BaseClient`` does): hooks, the rate
limiter and its Redis client are async and already ran on this loop thread for every WSGI
call, so the loop was there anyway; one driver means one upstream client, one pool and one
set of upstream settings (the sync copy had drifted: no upstream CA file, a different pool
size, no resend rule), and every relay rule (header shaping, the key never reflected,
truncation on a broken upstream, client-gone cancellation) is written once. A sans-IO
split would have needed a second HTTP/1.1 client for threads, which is exactly the copy
that drifted. The cost is two thread hand-offs per call, less than what the lean client
saves over httpx: under gunicorn gthread the Flask example serves about 1.6x the status
polls and 1.8x the streamed megabytes it did with the httpx relay (``bench/wsgi_path.py``,
numbers in ``docs/development.md``).

A framework adapter turns its request into ``(method, headers, input)`` plus the environ's
socket and address, and the returned :class:`SyncReply` into its streaming response; it
must close ``reply.body`` when the response ends or the client leaves (WSGI servers do,
through the iterable).
"""

from __future__ import annotations

import socket

from falproxy.config.settings import ProxyConfig
from falproxy.core.headers import Headers
from falproxy.proxy import Proxy
from falproxy.relay.call import serve_route
from falproxy.relay.exchange import serve_call
from falproxy.wsgi.body import Readable
from falproxy.wsgi.bridge import LoopThread
from falproxy.wsgi.call import SyncCall, SyncReply
from falproxy.wsgi.environ import environ_scope
from falproxy.wsgi.exchange import WsgiExchange
from falproxy.wsgi.handoff import FINISHED, Handoff

__all__ = ["Readable", "SyncFalProxy", "SyncReply"]


class SyncFalProxy(Proxy):
    """The proxy for threaded WSGI servers; its relay runs on one private loop thread."""

    def __init__(self, config: ProxyConfig | None = None) -> None:
        super().__init__(config)
        self._loop = LoopThread()

    def close(self) -> None:
        """Close pooled upstream connections and the private event loop."""
        self._loop.run(self.aclose())
        self._loop.close()

    def serve_ops(self, path: str, method: str, headers: Headers) -> SyncReply | None:
        """The answer of the operational endpoint at ``path``, or None if there is none."""
        endpoint = self.ops.match(path)
        if endpoint is None:
            return None
        return SyncReply.of(self._loop.run(self.ops.answer(endpoint, method, headers)))

    def call(
        self,
        method: str,
        headers: Headers,
        body: Readable,
        *,
        client: tuple[str, int] | None = None,
        sock: socket.socket | None = None,
    ) -> SyncReply:
        """Serve one call (or CORS preflight) up to fal's response headers; the body streams.

        ``client`` is the peer address (``REMOTE_ADDR``), for address-keyed rate limits;
        ``sock`` the client's socket, which bounds body reads by the body timeouts.
        """
        handoff = Handoff(self._loop.loop)
        scope = environ_scope(method, headers, client)
        exchange = WsgiExchange(scope, handoff, self.config.stream_idle_timeout)
        served = self._loop.submit(serve_call(serve_route(self, exchange), exchange))
        served.add_done_callback(lambda _: handoff.post(FINISHED))
        return SyncCall(handoff, exchange, served, body, sock).reply()
