"""Caps on the request head, enforced before anything is forwarded.

uvicorn's h11 parser refuses request heads over 16 KiB, but its default httptools parser
has no limit at all on header size or count. Every header a browser sends is copied into
the upstream request, so an unbounded head is an amplification and memory-exhaustion lever;
these caps keep both parsers to the same, generous bound (browsers send a few dozen headers
and a few KiB of cookies).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Final

from falproxy.core.errors import HeadersTooLarge

# nginx's default large_client_header_buffers is 4 x 8 KiB; twice that covers big cookies.
MAX_REQUEST_HEAD_BYTES: Final = 64 * 1024
# Browsers send 10-30 headers; Node's http server defaults to 2000, nginx has no count.
MAX_REQUEST_HEADERS: Final = 200


def check_request_head(headers: Sequence[tuple[bytes, bytes]]) -> None:
    """Raise 431 when the request carries too many or too large headers."""
    if len(headers) > MAX_REQUEST_HEADERS:
        raise HeadersTooLarge("Too many request headers")
    # Every name and value, plus ": " and CRLF per header; the lengths summed in C.
    size = sum(map(len, itertools.chain.from_iterable(headers))) + 4 * len(headers)
    if size > MAX_REQUEST_HEAD_BYTES:
        raise HeadersTooLarge()
