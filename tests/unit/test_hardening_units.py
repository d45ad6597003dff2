"""Unit rules behind the hardening: body timeout setting, framing, head caps, the gauge."""

from __future__ import annotations

import time

import anyio
import pytest

from falproxy import BadRequest, ConfigError, FalCredential, ProxyConfig
from falproxy.asgi.body import stream_body
from falproxy.core.body import BodyClock, declared_body
from falproxy.core.errors import HeadersTooLarge, RequestTimeout
from falproxy.core.head import MAX_REQUEST_HEAD_BYTES, MAX_REQUEST_HEADERS, check_request_head
from falproxy.ops.gauges import Gauge
from falproxy.relay.body import read_all

JSON = (b"content-type", b"application/json")


def test_body_timeout_from_env() -> None:
    config = ProxyConfig.from_env({"FAL_KEY": "id:secret", "FALPROXY_BODY_TIMEOUT": "2.5"})
    assert config.body_timeout == 2.5
    assert config.describe()["body_timeout"] == 2.5
    with pytest.raises(ConfigError):
        ProxyConfig(credential=FalCredential("id:secret"), body_timeout=0)


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"chunked, chunked", b"identity"])
def test_only_plain_chunked_transfer_encoding(coding: bytes) -> None:
    with pytest.raises(BadRequest):
        declared_body([JSON, (b"transfer-encoding", coding)], 100)
    assert declared_body([JSON, (b"transfer-encoding", b"Chunked ")], 100).present


def test_head_caps_are_inclusive() -> None:
    check_request_head([(b"x", b"y")] * MAX_REQUEST_HEADERS)
    with pytest.raises(HeadersTooLarge):
        check_request_head([(b"x", b"y")] * (MAX_REQUEST_HEADERS + 1))
    check_request_head([(b"x", b"a" * (MAX_REQUEST_HEAD_BYTES - 5))])
    with pytest.raises(HeadersTooLarge) as caught:
        check_request_head([(b"x", b"a" * (MAX_REQUEST_HEAD_BYTES - 4))])
    assert caught.value.status == 431


def test_a_stalled_body_read_times_out() -> None:
    async def never() -> dict[str, object]:
        await anyio.sleep(10)
        return {}

    async def main() -> None:
        with pytest.raises(RequestTimeout) as caught:
            await read_all(stream_body(never, 100, BodyClock(0.05, 300, time.monotonic())))
        assert caught.value.status == 408

    anyio.run(main)


def test_a_body_dripped_under_the_chunk_timeout_stops_at_the_deadline() -> None:
    async def drip() -> dict[str, object]:
        await anyio.sleep(0.02)  # well under the 1 s chunk timeout, forever
        return {"type": "http.request", "body": b"x", "more_body": True}

    async def main() -> None:
        started = time.monotonic()
        with pytest.raises(RequestTimeout) as caught:
            await read_all(stream_body(drip, 10_000, BodyClock(1.0, 0.2, started)))
        assert "FALPROXY_BODY_DEADLINE" in caught.value.detail
        assert time.monotonic() - started < 0.6

    anyio.run(main)


def test_gauge_counts_up_and_down() -> None:
    gauge = Gauge("test")
    gauge.inc()
    gauge.inc()
    gauge.dec()
    assert gauge.value == 1
