"""Hook types: how users extend the pipeline without forking it.

A hook is a plain async callable that takes one frozen :class:`RequestContext` (or, for
``on_event``, the finished :class:`~falproxy.core.events.ProxyEvent`) and returns a value.
Hooks of one kind are a tuple applied in order:

==================  =========================================  ===========================
kind                returns                                    composition
==================  =========================================  ===========================
``authenticate``    an :class:`Identity`, or ``None``          first identity wins
``before_request``  a :class:`Reply` to short-circuit, or None first reply wins, rest skipped
``resolve_key``     a :class:`FalCredential`, or ``None``      first credential wins
``on_event``        nothing                                    all run; failures logged
==================  =========================================  ===========================

Any hook may also raise :class:`~falproxy.core.errors.ProxyError` to refuse the call with a
status of its choosing. The same context type serves HTTP requests and WebSocket
handshakes (``method`` is ``"WEBSOCKET"`` for the latter), so one hook covers both.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from falproxy.core.answers import Answer
from falproxy.core.events import ProxyEvent
from falproxy.core.keys import FalCredential
from falproxy.core.targets import Target
from falproxy.core.types import Scope

logger = logging.getLogger("falproxy.core.hooks")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: a stable id (a user, API client or tenant) and optional claims."""

    id: str
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)  # e.g. verified JWT claims
    source: str = "hook"  # "token", "jwt", or "hook"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Everything a hook may look at; the raw target header is already parsed away."""

    target: Target
    app_id: str | None  # None for calls that name no app (storage, token-free REST)
    method: str  # HTTP method, or "WEBSOCKET" for a socket handshake
    scope: Scope  # the ASGI scope of the incoming request (read it, do not mutate it)
    client: str  # the caller's address, after trusted X-Forwarded-For handling
    identity: Identity | None = None

    def header(self, name: str) -> str | None:
        """The first value of a request header (case-insensitive), decoded as latin-1."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.scope.get("headers", ()):
            if key == wanted:
                return bytes(value).decode("latin-1")
        return None


@dataclass(frozen=True, slots=True)
class Reply:
    """A response a ``before_request`` hook sends instead of calling fal (JSON body)."""

    status: int
    body: object = None  # JSON-serialisable; None means {"detail": <status phrase>}
    headers: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def answer(self) -> Answer:
        """The reply as the proxy's own JSON answer (headers as the hook gave them)."""
        payload = self.body if self.body is not None else {"detail": f"refused ({self.status})"}
        return Answer.json(self.status, payload, dict(self.headers))


Authenticate = Callable[[RequestContext], Awaitable[Identity | None]]
BeforeRequest = Callable[[RequestContext], Awaitable[Reply | None]]
ResolveKey = Callable[[RequestContext], Awaitable[FalCredential | None]]
OnEvent = Callable[[ProxyEvent], Awaitable[None]]


async def first_identity(hooks: Sequence[Authenticate], context: RequestContext) -> Identity | None:
    """Run ``authenticate`` hooks in order; the first identity returned wins."""
    for hook in hooks:
        identity = await hook(context)
        if identity is not None:
            return identity
    return None


async def first_reply(hooks: Sequence[BeforeRequest], context: RequestContext) -> Reply | None:
    """Run ``before_request`` hooks in order until one answers for the call."""
    for hook in hooks:
        reply = await hook(context)
        if reply is not None:
            return reply
    return None


async def first_credential(
    hooks: Sequence[ResolveKey], context: RequestContext
) -> FalCredential | None:
    """Run ``resolve_key`` hooks in order; the first credential returned wins."""
    for hook in hooks:
        credential = await hook(context)
        if credential is not None:
            return credential
    return None


async def emit(hooks: Sequence[OnEvent], event: ProxyEvent) -> None:
    """Give the event to every ``on_event`` hook; one failing hook never hides the others.

    The call has already been answered, so an analytics sink that is down must not turn
    into an error for anyone: its exception is logged (type only, never its text, which
    could quote a request) and the next hook runs.
    """
    for hook in hooks:
        try:
            await hook(event)
        except Exception as exc:
            logger.warning("on_event hook %r failed: %s", hook, type(exc).__name__)
