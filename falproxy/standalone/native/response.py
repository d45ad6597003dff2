"""The bytes of a response head, and how its body is framed on the wire.

Content-Length when the headers carry one; no body for HEAD, 1xx, 204 and 304; otherwise
chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0 clients, which do not
know chunked coding). Header names and values are checked like uvicorn checks them, so
no value can split the response.
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from falproxy.core.errors import UpstreamUnavailable

# RFC 9110 section 5.1 / 5.5: a field name is a token; a value holds no CR, LF or NUL.
_BAD_NAME: Final = re.compile(b'[\x00-\x1f\x7f()<>@,;:\\[\\]={} \t\\\\"]')
_BAD_VALUE: Final = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 sections 6.4.1 and 15: these statuses never carry a body.
_NO_BODY_STATUSES: Final = frozenset({204, 304})
UNWRITABLE_HEADER: Final = "The fal API sent a response header that cannot be relayed"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
CHUNKED_END: Final = b"0\r\n\r\n"


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES: Final = {status: _status_line(status) for status in range(100, 600)}


class Framing:
    """How a response body goes out."""

    NONE: Final = 0  # no body at all (HEAD, 1xx, 204, 304)
    LENGTH: Final = 1  # exactly Content-Length bytes
    CHUNKED: Final = 2  # chunked transfer coding
    CLOSE: Final = 3  # delimited by closing the connection (HTTP/1.0)


@dataclass(slots=True)
class ResponseHead:
    data: bytes  # status line, headers and the blank line
    framing: int
    length: int  # the declared Content-Length (LENGTH framing)
    closes: bool  # the connection is closed after this response


def response_head(
    status: int,
    headers: Iterable[tuple[bytes, bytes]],
    defaults: bytes,
    *,
    head_request: bool,
    keep_alive: bool,
    http10: bool,
) -> ResponseHead:
    """The head of a response to a request (``head_request``: a HEAD request)."""
    parts = [STATUS_LINES.get(status) or _status_line(status), defaults]
    length = -1
    closes = not keep_alive
    for name, value in headers:
        if _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise UpstreamUnavailable(UNWRITABLE_HEADER)
        if name == b"content-length":
            if not value.isdigit():
                raise UpstreamUnavailable(UNWRITABLE_HEADER)
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            closes = True
            continue  # written once below
        parts += (name, b": ", value, b"\r\n")
    if head_request or status < 200 or status in _NO_BODY_STATUSES:
        framing = Framing.NONE
    elif length >= 0:
        framing = Framing.LENGTH
    elif http10:
        framing, closes = Framing.CLOSE, True
    else:
        framing = Framing.CHUNKED
        parts.append(b"transfer-encoding: chunked\r\n")
    if closes:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return ResponseHead(b"".join(parts), framing, max(length, 0), closes)


def encode_defaults(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (the Date header) as header lines."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body."""
    return b"%x\r\n%b\r\n" % (len(data), data)
