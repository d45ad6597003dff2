"""How a message body is delimited on the wire, decided once per message.

The parser (llhttp, strict) has already refused every ambiguous framing (Content-Length
with Transfer-Encoding, two different lengths, a Transfer-Encoding not ending in chunked):
what reaches these functions is one of the unambiguous cases, read from the headers the
parser accepted.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Final

# RFC 9110 sections 6.4.1, 15.3.5 and 15.4.5: these statuses never carry a body.
BODILESS_STATUSES: Final = frozenset({204, 304})
CHUNKED_END: Final = b"0\r\n\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class Framing(Enum):
    NONE = "none"  # no body (HEAD, 1xx, 204, 304, or a request without one)
    LENGTH = "length"  # exactly Content-Length bytes
    CHUNKED = "chunked"  # chunked transfer coding
    CLOSE = "close"  # delimited by closing the connection (HTTP/1.0 clients only)


def response_has_body(status: int, *, head_request: bool) -> bool:
    """Whether a response to this request may carry a body at all (RFC 9112 section 6.3)."""
    return not head_request and status >= 200 and status not in BODILESS_STATUSES


def request_framing(headers: Iterable[tuple[bytes, bytes]]) -> tuple[Framing, int]:
    """The framing of a request whose head a strict parser accepted, and its length.

    Chunked when any Transfer-Encoding is present (the parser refuses every other coding
    and its combination with Content-Length), else the one Content-Length.
    """
    length = -1
    for name, value in headers:
        if name == b"transfer-encoding":
            return Framing.CHUNKED, 0
        if name == b"content-length":
            length = int(value)
    if length < 0:
        raise ValueError("a request with a body needs a length or chunked coding")
    return Framing.LENGTH, length


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)
