"""Which WebSocket close code and reason the relay passes on, in either direction.

A relay sees close codes it must not repeat: RFC 6455 section 7.4.1 reserves 1005 (no
code was given), 1006 (the connection dropped without a close frame) and 1015 (TLS
failure) for *reporting*, never for a close frame, and servers or libraries that receive
them on the wire fail the connection. So the relay maps those to a code it may send, and
passes every other sendable code through unchanged, so that application codes (fal's and
the browser's 4xxx) survive the hop. The table is the same for both directions.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ABNORMAL_CLOSE",
    "MAX_REASON_BYTES",
    "MESSAGE_TOO_BIG",
    "NORMAL_CLOSE",
    "POLICY_VIOLATION",
    "RELAYABLE_CLOSE_CODES",
    "RESERVED_CLOSE_CODES",
    "relayed_close",
]

NORMAL_CLOSE: Final = 1000  # RFC 6455 7.4.1: the purpose of the connection was fulfilled
ABNORMAL_CLOSE: Final = 1011  # RFC 6455 7.4.1 (and RFC errata 3227): unexpected condition
POLICY_VIOLATION: Final = 1008  # RFC 6455 7.4.1: a message that violates policy (rate)
MESSAGE_TOO_BIG: Final = 1009  # RFC 6455 7.4.1: a message larger than the relay accepts

# RFC 6455 7.4.1: codes reserved for reporting, mapped to what the other side should hear.
# 1005 means "closed, no code given": a normal close. 1006 and 1015 mean the peer vanished.
RESERVED_CLOSE_CODES: Final = {1005: NORMAL_CLOSE, 1006: ABNORMAL_CLOSE, 1015: ABNORMAL_CLOSE}
# RFC 6455 7.4.1-7.4.2 and the IANA registry: codes an endpoint may put in a close frame
# (1004 is reserved, 1012-1014 are registered for servers, 3000-4999 are for applications).
RELAYABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, *range(1007, 1015), *range(3000, 5000)}
)
# RFC 6455 5.5: a control frame payload is at most 125 bytes, two of them for the code.
MAX_REASON_BYTES: Final = 123


def relayed_close(code: int | None, reason: str | None = "") -> tuple[int, str]:
    """The close code and reason to send on, given what the other side closed with.

    Sendable codes pass through; reserved ones map per :data:`RESERVED_CLOSE_CODES`; a
    missing code counts as 1005 and anything else unsendable becomes 1011. The reason is
    cut to fit a close frame without splitting a UTF-8 character.
    """
    code = 1005 if code is None else code
    if code in RELAYABLE_CLOSE_CODES:
        relayed = code
    else:
        relayed = RESERVED_CLOSE_CODES.get(code, ABNORMAL_CLOSE)
    return relayed, _fit_reason(reason or "")


def _fit_reason(reason: str) -> str:
    encoded = reason.encode("utf-8")
    if len(encoded) <= MAX_REASON_BYTES:
        return reason
    return encoded[:MAX_REASON_BYTES].decode("utf-8", errors="ignore")
