"""Request body framing and type rules."""

from __future__ import annotations

import pytest

from falproxy import BadRequest, PayloadTooLarge, UnsupportedMediaType
from falproxy.core.body import declared_body

JSON = (b"content-type", b"application/json")


def test_no_body() -> None:
    declared = declared_body([JSON], 100)
    assert not declared.present and declared.length is None


def test_empty_length_is_no_body_whatever_the_type() -> None:
    assert not declared_body([(b"content-length", b"0")], 100).present


def test_length() -> None:
    declared = declared_body([JSON, (b"content-length", b"10")], 100)
    assert declared.present and declared.length == 10


def test_chunked() -> None:
    declared = declared_body([JSON, (b"transfer-encoding", b"chunked")], 100)
    assert declared.present and declared.length is None


@pytest.mark.parametrize(
    "content_type", [b"application/json", b"Application/JSON; charset=utf-8", b"application/x+json"]
)
def test_json_types(content_type: bytes) -> None:
    assert declared_body([(b"content-type", content_type), (b"content-length", b"2")], 9).present


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ([JSON, (b"content-length", b"1"), (b"content-length", b"1")], BadRequest),
        ([JSON, (b"content-length", b"1"), (b"transfer-encoding", b"chunked")], BadRequest),
        ([JSON, (b"content-length", b"-1")], BadRequest),
        ([JSON, (b"content-length", b"1e3")], BadRequest),
        ([JSON, (b"content-length", b"101")], PayloadTooLarge),
        ([(b"content-type", b"text/plain"), (b"content-length", b"2")], UnsupportedMediaType),
        ([(b"content-length", b"2")], UnsupportedMediaType),
        (
            [(b"content-type", b"application/jsonx"), (b"content-length", b"2")],
            UnsupportedMediaType,
        ),
    ],
)
def test_refused(headers: list[tuple[bytes, bytes]], error: type[Exception]) -> None:
    with pytest.raises(error):
        declared_body(headers, 100)
