"""Where one request's bytes end, so the parser is never fed a byte of the next request.

llhttp decides the framing; this module only chooses where to stop feeding it. A head
ends at the first blank line; a chunked body can only end at a CRLF CRLF (the last chunk
``0\\r\\n`` and the empty line, or the last trailer and the empty line), so the body is
fed up to each such candidate in turn until the parser says the message is complete. The
bytes after it stay raw and unparsed until the current request is answered, so pipelined
requests cost no parsing and no memory beyond their bytes. Should the parser ever end a
message elsewhere, the protocol refuses the connection rather than guess (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterator

BLANK_LINE = b"\r\n\r\n"
# RFC 9112 section 2.2: a server SHOULD ignore empty lines received before a request line.
LEADING_NOISE = b"\r\n"


Buffer = bytes | bytearray


def skip_empty_lines(data: Buffer) -> Buffer:
    """``data`` without the empty lines a client may send before a request line."""
    return data.lstrip(LEADING_NOISE) if data[:1] in (b"\r", b"\n") else data


def head_end(data: Buffer, limit: int, start: int = 0) -> int:
    """The offset just past the head's blank line within ``limit`` bytes; -1 if none yet.

    ``start``: where to begin looking (bytes before it were searched already)."""
    found = data.find(BLANK_LINE, start, limit)
    return -1 if found < 0 else found + len(BLANK_LINE)


def chunked_stops(tail: bytes, data: Buffer) -> Iterator[int]:
    """Offsets in ``data`` where a chunked body may end, in order.

    ``tail`` is the last (at most 3) bytes already fed, so a CRLF CRLF split across two
    reads is found too.
    """
    probe = tail + data
    found = probe.find(BLANK_LINE)
    while found >= 0:
        yield found + len(BLANK_LINE) - len(tail)
        found = probe.find(BLANK_LINE, found + 1)
