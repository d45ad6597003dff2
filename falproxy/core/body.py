"""Request bodies: what a declared body may be, and how a call's body will be sent.

Bodies are never read whole (except the small token-minting one): the front ends relay
them as they arrive, counted so that a body without a ``Content-Length`` still stops at
the cap, within the per-chunk timeout and the whole-body deadline. The rules here are
pure; each front end reads its own transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from falproxy.core.errors import (
    BadRequest,
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from falproxy.core.policy import MAX_TOKEN_BODY, Policy
from falproxy.core.targets import Target


@dataclass(frozen=True, slots=True)
class DeclaredBody:
    """What the request's headers say about its body."""

    length: int | None  # the validated Content-Length, or None when chunked
    present: bool  # whether any body bytes may follow


def declared_body(headers: Iterable[tuple[bytes, bytes]], max_bytes: int) -> DeclaredBody:
    """Validate framing and type of the request body before anything is forwarded.

    Raises 400 for ambiguous framing (RFC 9112 section 6.3: both length and chunked, or
    several lengths), 413 for a declared length over the cap, 415 for a non-JSON body.
    """
    headers = list(headers)
    lengths = [value for name, value in headers if name == b"content-length"]
    codings = [value for name, value in headers if name == b"transfer-encoding"]
    chunked = bool(codings)
    if len(lengths) > 1 or (lengths and chunked):
        raise BadRequest("Ambiguous request body framing")
    if codings and b",".join(codings).strip().lower() != b"chunked":
        # The server removed only the chunking: a gzip (or unknown) coding would reach fal
        # as undeclared bytes. fal's clients send plain JSON; nothing else is relayed.
        raise BadRequest("Unsupported Transfer-Encoding (only chunked is accepted)")
    length = _parse_length(lengths[0]) if lengths else None
    if length is not None and length > max_bytes:
        raise PayloadTooLarge()
    present = chunked or bool(length)
    if present and not is_json_content_type(headers):
        raise UnsupportedMediaType()
    return DeclaredBody(length=length if not chunked else None, present=present)


def _parse_length(raw: bytes) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise BadRequest("Invalid Content-Length")
    return int(raw)


def is_json_content_type(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """``application/json`` (any parameters, any case), or a ``+json`` type."""
    for name, value in headers:
        if name == b"content-type":
            media_type = value.split(b";", 1)[0].strip().lower()
            return media_type == b"application/json" or (
                media_type.startswith(b"application/") and media_type.endswith(b"+json")
            )
    return False


class BodyKind(Enum):
    NONE = "none"  # nothing follows the head
    STREAM = "stream"  # relayed chunk by chunk as it arrives
    TOKEN = "token"  # a token-minting body: read whole (small), policed, then sent


# Frozen: NO_BODY below is shared by every bodiless call (most calls build no plan).
@dataclass(frozen=True, slots=True)
class BodyPlan:
    """How the front end must read and send this call's body."""

    kind: BodyKind
    length: int | None  # the declared length (None: chunked, or a policed token body)
    max_bytes: int  # the cap while reading


def plan_body(
    method: str,
    target: Target,
    headers: Iterable[tuple[bytes, bytes]],
    policy: Policy,
    max_bytes: int,
) -> BodyPlan:
    """Validate the declared body (400/413/415) and decide how it is read and sent."""
    declared = declared_body(headers, max_bytes)
    if policy.is_token_request(target):
        if method != "POST":
            raise MethodNotAllowed(headers={"allow": "POST"})
        return BodyPlan(BodyKind.TOKEN, None, MAX_TOKEN_BODY)
    if not declared.present:
        return NO_BODY if declared.length is None else BodyPlan(BodyKind.NONE, declared.length, 0)
    return BodyPlan(BodyKind.STREAM, declared.length, max_bytes)


NO_BODY = BodyPlan(BodyKind.NONE, None, 0)  # most calls: status polls and results (GET)


class BodyClock:
    """The two bounds on reading a body: each chunk's wait, and the whole body's deadline.

    ``next_wait()`` is how long the next read may block; zero or less means the deadline
    has passed and the reader must stop with 408. A wait shorter than the chunk timeout is
    bounded by the deadline, so if it runs out, the deadline is what ran out.
    """

    def __init__(self, chunk_timeout: float, deadline: float, now: float) -> None:
        self.chunk_timeout = chunk_timeout
        self.ends = now + deadline

    def next_wait(self, now: float) -> float:
        return min(self.chunk_timeout, self.ends - now)

    def timeout_detail(self, wait: float) -> str | None:
        """The 408 detail when a wait of ``wait`` seconds ran out (None: the default one)."""
        return DEADLINE_DETAIL if wait < self.chunk_timeout else None


DEADLINE_DETAIL = "The request body was not received within FALPROXY_BODY_DEADLINE"
