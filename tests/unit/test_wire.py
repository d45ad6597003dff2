"""falproxy/wire: the state tables walked whole, the parsers' leniencies pinned, and the
one response writer's rules."""

from __future__ import annotations

from enum import Enum
from typing import Any

import httptools
import pytest

from falproxy.core.errors import UpstreamUnavailable
from falproxy.wire.fields import valid_name, valid_value
from falproxy.wire.framing import Framing, request_framing, response_has_body
from falproxy.wire.parsers import LENIENCIES, request_parser, response_parser
from falproxy.wire.states import (
    CLIENT,
    SERVER,
    Client,
    ClientEvent,
    Machine,
    Server,
    ServerEvent,
    StateError,
)
from falproxy.wire.writer import response_head

TABLES: list[tuple[Any, type[Enum], type[Enum]]] = [
    (SERVER, Server, ServerEvent),
    (CLIENT, Client, ClientEvent),
]


@pytest.mark.parametrize(("table", "states", "events"), TABLES, ids=["server", "client"])
def test_every_state_and_event_pair_is_either_a_row_or_raises(
    table: Any, states: type[Enum], events: type[Enum]
) -> None:
    assert set(table) == set(states)
    for state in states:
        for event in events:
            machine: Machine[Any, Any] = Machine(table, state)
            if event in table[state]:
                assert machine.fire(event) is table[state][event]
            else:
                with pytest.raises(StateError):
                    machine.fire(event)
                assert machine.state is state  # an illegal event changes nothing


@pytest.mark.parametrize(("table", "states", "events"), TABLES, ids=["server", "client"])
def test_every_state_can_close_and_closed_is_final(
    table: Any, states: type[Enum], events: type[Enum]
) -> None:
    closed = states["CLOSED"]
    for state in states:
        assert table[state][events["CLOSE"]] is closed
    assert set(table[closed].values()) == {closed}


def test_every_state_is_reachable_from_the_start() -> None:
    for table, start in ((SERVER, Server.IDLE), (CLIENT, Client.IDLE)):
        seen, todo = {start}, [start]
        while todo:
            for target in table[todo.pop()].values():
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        assert seen == set(table)


# Each leniency, and a message the strict parser refuses that the lenient one accepts.
LENIENT_SAMPLES = {
    "lenient_headers": b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n",
    "lenient_chunked_length": (
        b"POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "lenient_keep_alive": b"GET / HTTP/1.1\r\nconnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "lenient_transfer_encoding": (b"POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\nabc"),
    "lenient_version": b"GET / HTTP/1.9\r\n\r\n",
    "lenient_data_after_close": b"GET / HTTP/1.1\r\nconnection: close\r\n\r\nX",
    "lenient_optional_lf_after_cr": b"GET / HTTP/1.1\rx: y\r\n\r\n",
    "lenient_optional_cr_before_lf": b"GET / HTTP/1.1\r\nx: y\n\r\n",
    "lenient_optional_crlf_after_chunk": (
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc0\r\n\r\n"
    ),
    "lenient_spaces_after_chunk_size": (
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n"
    ),
}


class _Sink:
    def on_message_complete(self) -> None:
        pass


def test_every_leniency_is_pinned_off() -> None:
    assert set(LENIENCIES) == set(LENIENT_SAMPLES)
    assert not any(LENIENCIES.values())


@pytest.mark.parametrize("leniency", sorted(LENIENT_SAMPLES))
def test_the_strict_parser_refuses_what_each_leniency_would_accept(leniency: str) -> None:
    sample = LENIENT_SAMPLES[leniency]
    with pytest.raises(httptools.HttpParserError):
        request_parser(_Sink()).feed_data(sample)
    lenient = httptools.HttpRequestParser(_Sink())
    lenient.set_dangerous_leniencies(**{leniency: True})
    try:
        lenient.feed_data(sample)
    except httptools.HttpParserUpgrade:  # pragma: no cover (none of the samples upgrade)
        pass
    except httptools.HttpParserError as exc:  # the flag must make a difference
        if leniency not in {"lenient_data_after_close", "lenient_keep_alive"}:
            raise AssertionError(f"{leniency} accepted nothing more: {exc}") from exc


def test_the_response_parser_is_strict_too() -> None:
    with pytest.raises(httptools.HttpParserError):
        response_parser(_Sink()).feed_data(b"HTTP/1.1 200 OK\ncontent-length: 0\n\n")


def test_fields() -> None:
    assert valid_name(b"x-fal-target-url") and not valid_name(b"") and not valid_name(b"a b")
    assert not valid_name(b"a:b") and not valid_name(b"a\r")
    assert valid_value(b"a\tb \x80") and not valid_value(b"a\r\nb") and not valid_value(b"\x00")


def test_framing_decisions() -> None:
    assert request_framing([(b"content-length", b"12")]) == (Framing.LENGTH, 12)
    assert request_framing([(b"transfer-encoding", b"chunked")]) == (Framing.CHUNKED, 0)
    with pytest.raises(ValueError):
        request_framing([(b"x", b"y")])
    for status in (101, 204, 304):
        assert not response_has_body(status, head_request=False)
    assert not response_has_body(200, head_request=True)
    assert response_has_body(200, head_request=False)


def _head(status: int, headers: list[tuple[bytes, bytes]], **options: bool) -> Any:
    settings = {"head_request": False, "keep_alive": True, "http10": False, **options}
    return response_head(status, headers, b"", **settings)


def test_the_writer_writes_one_content_length_and_its_own_framing() -> None:
    head = _head(200, [(b"content-length", b"5"), (b"Content-Length", b"5")])
    assert head.data.lower().count(b"content-length") == 1 and head.framing is Framing.LENGTH
    with pytest.raises(UpstreamUnavailable):
        _head(200, [(b"content-length", b"5"), (b"content-length", b"6")])
    smuggled = _head(200, [(b"transfer-encoding", b"chunked"), (b"connection", b"keep-alive")])
    assert smuggled.data.count(b"transfer-encoding") == 1  # the writer's own, once
    assert b"keep-alive" not in smuggled.data
    assert _head(200, [(b"connection", b"close")]).closes


def test_no_content_length_or_body_on_a_204() -> None:
    head = _head(204, [(b"content-length", b"4")])
    assert b"content-length" not in head.data and head.framing is Framing.NONE
    assert b"content-length: 4" in _head(304, [(b"content-length", b"4")]).data


def test_an_unwritable_header_is_refused() -> None:
    for bad in ((b"x", b"a\r\nset-cookie: y"), (b"bad name", b"v"), (b"", b"v")):
        with pytest.raises(UpstreamUnavailable):
            _head(200, [bad])
