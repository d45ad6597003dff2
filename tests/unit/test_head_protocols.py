"""The answer to an oversized request head, as the guarded uvicorn protocols write it."""

from __future__ import annotations

import json

from falproxy.standalone.protocols import (
    GuardedHTTPProtocol,
    GuardedHttpToolsProtocol,
    refusal_bytes,
)


def test_an_oversized_head_gets_a_complete_json_431_and_the_connection_closes() -> None:
    head, _, body = refusal_bytes().partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    fields = dict(line.split(b": ", 1) for line in lines[1:])
    assert fields[b"content-type"] == b"application/json"
    assert fields[b"connection"] == b"close"
    assert int(fields[b"content-length"]) == len(body)
    assert json.loads(body) == {"detail": "Request headers too large"}


def test_falproxy_serve_runs_the_guarded_httptools_protocol() -> None:
    from falproxy.standalone.cli import GUARDED_HTTP

    module, _, name = GUARDED_HTTP.partition(":")
    assert module == "falproxy.standalone.protocols"
    assert name == "GuardedHTTPProtocol"
    assert GuardedHTTPProtocol is GuardedHttpToolsProtocol
