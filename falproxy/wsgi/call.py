"""The WSGI thread's half of a call: read the body when asked, then write the response.

:class:`SyncCall` waits on its :class:`~falproxy.wsgi.handoff.Handoff` for the relay on
the loop thread: it reads the request body chunk by chunk when the relay asks for it
(:func:`falproxy.wsgi.body.read_chunks`, so the socket timeouts and the 400/408/413 rules
stay those of the WSGI thread), and returns the response as a :class:`SyncReply` once
the relay has its head. The body of a relayed response is a :class:`RelayedBody` that
takes chunks from the hand-off as the server writes them; its ``close()`` cancels the
relay when the response has not ended (the client left), and returns once the call has
ended, so no upstream call outlives its WSGI request.
"""

from __future__ import annotations

import concurrent.futures
import logging
import socket
from collections.abc import Generator, Iterable
from dataclasses import dataclass

from falproxy.core.answers import Answer
from falproxy.core.body import declared_body
from falproxy.core.errors import ClientDisconnected, ProxyError, UpstreamUnavailable
from falproxy.wsgi.body import Readable, read_chunks
from falproxy.wsgi.exchange import WsgiExchange
from falproxy.wsgi.handoff import END, FINISHED, Handoff, Read, Start

logger = logging.getLogger("falproxy.relay")


@dataclass(slots=True)
class SyncReply:
    """A response to stream: ``body`` must be closed (if it has ``close``) once served."""

    status: int
    headers: list[tuple[str, str]]
    body: Iterable[bytes]

    @classmethod
    def of(cls, answer: Answer) -> SyncReply:
        """The one way an answer of the proxy's own becomes a WSGI response."""
        return cls(answer.status, text_headers(answer.headers), [answer.body])


class SyncCall:
    """One call as its WSGI thread sees it: the request's input, and the relay's messages."""

    def __init__(
        self,
        handoff: Handoff,
        exchange: WsgiExchange,
        served: concurrent.futures.Future[None],
        body: Readable,
        sock: socket.socket | None,
    ) -> None:
        self.handoff = handoff
        self.exchange = exchange
        self.served = served
        self._input = body
        self._sock = sock
        self._chunks: Generator[bytes, None, None] | None = None
        self._finished = False  # FINISHED taken: the relay's coroutine has returned

    def take(self) -> object:
        """The relay's next message (waiting for it)."""
        message = self.handoff.take()
        if message is FINISHED:
            self._finished = True
        return message

    def reply(self) -> SyncReply:
        """Wait for the relay's answer or response head, reading the body on demand."""
        while True:
            message = self.take()
            if isinstance(message, Read):
                self.read(message)
            elif isinstance(message, Start):
                return SyncReply(message.status, text_headers(message.headers), RelayedBody(self))
            elif isinstance(message, Answer):
                self.end()
                return SyncReply.of(message)
            elif message is FINISHED:
                self.end()
                return SyncReply.of(Answer.of_error(ProxyError()))  # ended unanswered: a bug

    def read(self, request: Read) -> None:
        """Read the next body chunk for the relay (``b""`` at its end)."""
        try:
            if self._chunks is None:
                length = declared_body(self.exchange.scope["headers"], request.max_bytes).length
                self._chunks = read_chunks(
                    self._input, request.max_bytes, length, request.clock, self._sock
                )
            self.handoff.settle(request, next(self._chunks, b""))
        except Exception as exc:  # 400/408/413 as raised; anything else ends the relay too
            self.handoff.settle(request, exc)

    def end(self) -> None:
        """Wait for the relay's coroutine to return (its event emitted), then stop reading.

        Messages still on their way are drained: chunks are dropped (freeing the window),
        and a late request for body bytes is refused, so the relay never waits on a thread
        that has stopped listening and never sends a body short as if complete.
        """
        while not self._finished:
            message = self.take()
            if isinstance(message, Read):
                self.handoff.settle(message, ClientDisconnected())
        if self._chunks is not None:
            self._chunks.close()  # stops the deadline timer, restores the socket timeout
        error = None if self.served.cancelled() else self.served.exception()
        if error is not None:
            logger.error("error serving a WSGI request", exc_info=error)


class RelayedBody:
    """The relayed response body as a WSGI iterable: chunks as the server writes them.

    WSGI servers call ``close()`` when the response ends or the client has gone (the next
    write fails), even if iteration never started. A class rather than a generator because
    an unstarted generator's ``close()`` would skip its ``finally``.
    """

    def __init__(self, call: SyncCall) -> None:
        self._call = call
        self._ended = False  # END or FINISHED taken: the relay needs no cancelling
        self._closed = False

    def __iter__(self) -> RelayedBody:
        return self

    def __next__(self) -> bytes:
        if self._ended:
            raise StopIteration
        while True:
            message = self._call.take()
            if type(message) is bytes:
                return message
            if isinstance(message, Read):  # fal answered before the body was all sent
                self._call.read(message)
                continue
            self._ended = True
            if message is END:
                raise StopIteration
            # FINISHED before END: the upstream broke off; the server aborts the response
            raise UpstreamUnavailable()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._ended:
            self._call.handoff.call_soon(self._call.exchange.leave)
        self._call.end()


def text_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
