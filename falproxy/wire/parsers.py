"""The llhttp parsers, with every leniency pinned off.

llhttp can be told to accept malformed input (bare LF, CL with TE, spaces after a chunk
size...). Each of those is a request-smuggling lever between two parsers that disagree,
so both of falproxy's parsers set every leniency explicitly to off instead of trusting the
library's current defaults; ``tests/unit/test_wire.py`` shows each flag matters.
"""

from __future__ import annotations

from typing import Any, Final

import httptools

# Every leniency llhttp has (httptools' names), and the value falproxy pins: off.
LENIENCIES: Final = {
    "lenient_headers": False,  # invalid characters in header values
    "lenient_chunked_length": False,  # Content-Length together with chunked coding
    "lenient_keep_alive": False,  # reading on after a message that closes
    "lenient_transfer_encoding": False,  # a Transfer-Encoding not ending in chunked
    "lenient_version": False,  # an HTTP version other than 1.0 and 1.1
    "lenient_data_after_close": False,  # bytes after a Connection: close message
    "lenient_optional_lf_after_cr": False,  # a CR not followed by LF
    "lenient_optional_cr_before_lf": False,  # a bare LF as line end
    "lenient_optional_crlf_after_chunk": False,  # chunk data not followed by CRLF
    "lenient_spaces_after_chunk_size": False,  # spaces between a chunk size and CRLF
}


def request_parser(callbacks: Any) -> httptools.HttpRequestParser:
    """A strict request parser calling ``callbacks``' ``on_*`` methods."""
    parser = httptools.HttpRequestParser(callbacks)
    parser.set_dangerous_leniencies(**LENIENCIES)
    return parser


def response_parser(callbacks: Any) -> httptools.HttpResponseParser:
    """A strict response parser calling ``callbacks``' ``on_*`` methods."""
    parser = httptools.HttpResponseParser(callbacks)
    parser.set_dangerous_leniencies(**LENIENCIES)
    return parser
