"""The one writer of a response head, whoever made the response (the upstream, a hook, the
proxy itself).

Rules: every name and value passes :mod:`falproxy.wire.fields`; framing headers are the
writer's alone — at most one ``Content-Length`` (equal duplicates collapse, different ones
are refused), none on a 1xx or 204, and ``Transfer-Encoding``, ``Connection`` and
``Keep-Alive`` from any source are dropped and written by the writer when they apply. So no
response can carry two framings, or split itself, whatever its headers say.
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from falproxy.core.errors import UpstreamUnavailable
from falproxy.wire.fields import valid_name, valid_value
from falproxy.wire.framing import Framing, response_has_body

UNWRITABLE_HEADER: Final = "The fal API sent a response header that cannot be relayed"
# Framing and connection management belong to the writer (RFC 9112 sections 6 and 9.6).
WRITER_HEADERS: Final = frozenset({b"transfer-encoding", b"connection", b"keep-alive"})


def _status_line(status: int) -> bytes:
    try:
        phrase = http.HTTPStatus(status).phrase.encode()
    except ValueError:
        phrase = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, phrase)


STATUS_LINES: Final = {status: _status_line(status) for status in range(100, 600)}


@dataclass(slots=True)
class ResponseHead:
    data: bytes  # status line, headers and the blank line
    framing: Framing
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
    """The head of a response to a request (``head_request``: a HEAD request).

    ``defaults`` are header lines every response carries (the Date header). Raises
    :class:`UpstreamUnavailable` (502) for a header that cannot be written.
    """
    parts = [STATUS_LINES.get(status) or _status_line(status), defaults]
    length = -1
    closes = not keep_alive
    for name, value in headers:
        lowered = name.lower()
        if not valid_name(name) or not valid_value(value):
            raise UpstreamUnavailable(UNWRITABLE_HEADER)
        if lowered == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise UpstreamUnavailable(UNWRITABLE_HEADER)
            length = int(value)
            continue  # written once below
        if lowered in WRITER_HEADERS:
            if lowered == b"connection" and b"close" in value.lower():
                closes = True
            continue
        parts += (name, b": ", value, b"\r\n")
    if not response_has_body(status, head_request=head_request):
        framing = Framing.NONE
        if length >= 0 and status >= 200 and status != 204:  # RFC 9110 section 8.6
            parts += (b"content-length: ", b"%d" % length, b"\r\n")
    elif length >= 0:
        framing = Framing.LENGTH
        parts += (b"content-length: ", b"%d" % length, b"\r\n")
    elif http10:
        framing, closes = Framing.CLOSE, True
    else:
        framing = Framing.CHUNKED
        parts.append(b"transfer-encoding: chunked\r\n")
    if closes:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    return ResponseHead(b"".join(parts), framing, max(length, 0), closes)


def header_lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header lines for headers already known to be valid (the server's defaults)."""
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def closing_answer(
    status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes, defaults: bytes = b""
) -> bytes:
    """A whole response written outside any call (a refusal before or instead of one) that
    closes the connection; ``headers`` are the proxy's own, already valid."""
    line = STATUS_LINES.get(status) or _status_line(status)
    return line + defaults + header_lines(headers) + b"connection: close\r\n\r\n" + body
