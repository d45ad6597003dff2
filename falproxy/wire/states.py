"""The states of an HTTP/1.1 connection, server side and client side, as transition tables.

Rules, stated first:

1. A connection is in exactly one named state. It changes state only through an event
   listed for that state in its table; any other event raises :class:`StateError` (a bug
   in the protocol code, never a client's doing: malformed input is an event too).
2. The protocol object owns its :class:`Machine`; the objects it serves (the exchange of
   one request, the response being read) raise events through the protocol and never set
   its state themselves.
3. Every state that still reads from the socket has a bound in time (a head timer, the
   body clock, the keep-alive timer, the linger timer, the response's idle timeout), and
   reading stops in every state where unread input would only pile up (see the tables).

Server side (:data:`SERVER`), one client connection of the native front end:

==============  =====================================================================
state           meaning
==============  =====================================================================
``IDLE``        between requests: nothing of the next one has arrived (timed)
``HEAD``        part of a request head has arrived (timed, capped in bytes)
``BODY``        a request is being served and its body is still arriving
``RESPONDING``  the request is in; its response is being written; pipelined bytes
                wait unread
``FLUSHING``    the response is complete but the client has not read it yet; the
                next request waits until the transport drains
``LINGER``      answered without reading the whole body: input is discarded until a
                timer closes the connection (RFC 9112 section 9.6)
``UPGRADED``    the connection belongs to a WebSocket now
``CLOSED``      closed, by either side
==============  =====================================================================

Client side (:data:`CLIENT`), one upstream connection of the lean client:

==============  =====================================================================
``IDLE``        open, carrying no request (fresh or pooled)
``SENDING``     a request is being written
``AWAITING``    the request is written; the response head has not arrived
``READING``     the response head arrived; its body is being read
``DONE``        the response was read to its end; the connection may be pooled
``CLOSED``      closed or unusable (lost, broken framing, bytes after a response)
==============  =====================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Final, Generic, TypeVar


class StateError(Exception):
    """An event that the current state does not allow: a bug, never user input."""


class Server(Enum):
    IDLE = "idle"
    HEAD = "head"
    BODY = "body"
    RESPONDING = "responding"
    FLUSHING = "flushing"
    LINGER = "linger"
    UPGRADED = "upgraded"
    CLOSED = "closed"


class ServerEvent(Enum):
    HEAD_BYTES = "head bytes"  # part of a head arrived
    REQUEST = "request"  # a complete head whose body follows
    BODILESS_REQUEST = "bodiless request"  # a complete head, no body
    BODY_END = "body end"  # the last byte of the body arrived
    WRITE_BLOCKED = "write blocked"  # the response ended while the client does not read
    DRAINED = "drained"  # the client read what was written: ready for the next request
    KEEP_ALIVE = "keep alive"  # the response ended: ready for the next request
    LINGER = "linger"  # answered early: discard the rest, then close
    UPGRADE = "upgrade"  # a WebSocket handshake took the connection
    CLOSE = "close"  # closed by us or by the client


class Client(Enum):
    IDLE = "idle"
    SENDING = "sending"
    AWAITING = "awaiting"
    READING = "reading"
    DONE = "done"
    CLOSED = "closed"


class ClientEvent(Enum):
    SEND = "send"  # a request starts
    SENT = "sent"  # its last byte was handed to the transport
    HEAD = "head"  # the response head arrived (it may end the message too)
    COMPLETE = "complete"  # the response message ended, well framed
    RECYCLE = "recycle"  # back to the pool for another request
    CLOSE = "close"  # lost, broken, refused or closed on purpose


SERVER: Final[Mapping[Server, Mapping[ServerEvent, Server]]] = {
    Server.IDLE: {
        ServerEvent.HEAD_BYTES: Server.HEAD,
        ServerEvent.REQUEST: Server.BODY,
        ServerEvent.BODILESS_REQUEST: Server.RESPONDING,
        ServerEvent.UPGRADE: Server.UPGRADED,
        ServerEvent.CLOSE: Server.CLOSED,
    },
    Server.HEAD: {
        ServerEvent.HEAD_BYTES: Server.HEAD,
        ServerEvent.REQUEST: Server.BODY,
        ServerEvent.BODILESS_REQUEST: Server.RESPONDING,
        ServerEvent.UPGRADE: Server.UPGRADED,
        ServerEvent.CLOSE: Server.CLOSED,
    },
    Server.BODY: {
        ServerEvent.BODY_END: Server.RESPONDING,
        # An answer written before the body ended never keeps the connection alive.
        ServerEvent.LINGER: Server.LINGER,
        ServerEvent.CLOSE: Server.CLOSED,
    },
    Server.RESPONDING: {
        ServerEvent.WRITE_BLOCKED: Server.FLUSHING,
        ServerEvent.KEEP_ALIVE: Server.IDLE,
        ServerEvent.LINGER: Server.LINGER,
        ServerEvent.CLOSE: Server.CLOSED,
    },
    Server.FLUSHING: {
        ServerEvent.DRAINED: Server.IDLE,
        ServerEvent.CLOSE: Server.CLOSED,
    },
    Server.LINGER: {ServerEvent.CLOSE: Server.CLOSED},
    Server.UPGRADED: {ServerEvent.CLOSE: Server.CLOSED},
    Server.CLOSED: {ServerEvent.CLOSE: Server.CLOSED},
}

CLIENT: Final[Mapping[Client, Mapping[ClientEvent, Client]]] = {
    Client.IDLE: {ClientEvent.SEND: Client.SENDING, ClientEvent.CLOSE: Client.CLOSED},
    Client.SENDING: {
        ClientEvent.SENT: Client.AWAITING,
        # An early answer (413 before the body is sent) is read as usual.
        ClientEvent.HEAD: Client.READING,
        ClientEvent.CLOSE: Client.CLOSED,
    },
    Client.AWAITING: {ClientEvent.HEAD: Client.READING, ClientEvent.CLOSE: Client.CLOSED},
    Client.READING: {
        ClientEvent.SENT: Client.READING,  # the body finished after an early answer
        ClientEvent.COMPLETE: Client.DONE,
        ClientEvent.CLOSE: Client.CLOSED,
    },
    Client.DONE: {
        ClientEvent.SENT: Client.DONE,
        ClientEvent.RECYCLE: Client.IDLE,
        ClientEvent.CLOSE: Client.CLOSED,
    },
    Client.CLOSED: {ClientEvent.CLOSE: Client.CLOSED},
}

S = TypeVar("S", bound=Enum)
E = TypeVar("E", bound=Enum)


class Machine(Generic[S, E]):
    """A current state and the one table that moves it."""

    __slots__ = ("state", "table")

    def __init__(self, table: Mapping[S, Mapping[E, S]], start: S) -> None:
        self.table = table
        self.state = start

    def fire(self, event: E) -> S:
        """Apply ``event``; :class:`StateError` if the current state does not allow it."""
        try:
            self.state = self.table[self.state][event]
        except KeyError:
            raise StateError(f"{event.name} is not allowed in state {self.state.name}") from None
        return self.state

    def allows(self, event: E) -> bool:
        return event in self.table[self.state]


def server_machine() -> Machine[Server, ServerEvent]:
    return Machine(SERVER, Server.IDLE)


def client_machine() -> Machine[Client, ClientEvent]:
    return Machine(CLIENT, Client.IDLE)


# States in which a server connection has not delivered a complete request head: the
# ones shed first when the connection cap is reached.
HEADLESS: Final = frozenset({Server.IDLE, Server.HEAD})
