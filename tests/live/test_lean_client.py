"""The lean upstream client (falproxy/client) against real upstreams on loopback sockets.

Each upstream is a raw asyncio server in its own thread (tests/support/scripted_upstream.py)
that records the exact bytes it was sent and answers with bytes the test writes by hand,
well-formed or not; HTTPS ones use a CA made at run time (tests/support/tls.py).
"""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvloop

from falproxy.client import MAX_RESPONSE_HEAD_BYTES, LeanClient, UpstreamResponse, UpstreamSettings
from falproxy.client.connection import READ_HIGH_WATER
from falproxy.core.errors import UpstreamBroken, UpstreamTimeout, UpstreamUnavailable
from tests.support.faulty_upstream import closed_port
from tests.support.scripted_upstream import (
    Received,
    ScriptedUpstream,
    chunked,
    response,
    scripted_upstream,
)
from tests.support.tls import make_pki

OK = response("200 OK", b'{"ok": true}', "content-type: application/json")
# The most any single socket read adds past the high-water mark (asyncio and uvloop read
# at most 256 KiB at a time).
ONE_READ = 256 * 1024


def client(**options: float | int | str | None) -> LeanClient:
    settings: dict[str, float | int | str | None] = {"connect_timeout": 5.0, "idle_timeout": 5.0}
    settings.update(options)
    return LeanClient(UpstreamSettings(**settings))  # type: ignore[arg-type]


async def fetch(
    lean: LeanClient,
    url: str,
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | AsyncIterator[bytes] | None = None,
    head_timeout: float = 5.0,
) -> tuple[UpstreamResponse, bytes]:
    """One call read to its end and released (back to the pool when allowed)."""
    answer = await lean.request(method, url, headers or [], body, head_timeout=head_timeout)
    data = bytearray()
    try:
        while chunk := await answer.read_chunk():
            data += chunk
    except BaseException:
        answer.close()
        raise
    answer.release()
    return answer, bytes(data)


def always(data: bytes, keep: bool = True):  # type: ignore[no-untyped-def]
    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        return keep

    return answer


def url(upstream: ScriptedUpstream, path: str = "/fal-ai/x", scheme: str = "http") -> str:
    return f"{scheme}://127.0.0.1:{upstream.port}{path}"


async def wait_until(condition, seconds: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- keep-alive and the pool -----------------------------------------------------------------


async def test_sequential_calls_share_one_kept_alive_connection() -> None:
    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        for _ in range(10):
            answer, data = await fetch(lean, url(upstream))
            assert (answer.status, data, answer.complete) == (200, b'{"ok": true}', True)
        assert upstream.connections == 1
        assert lean.idle_connections == 1
        await lean.aclose()
        assert not lean.is_open and lean.open_connections == 0


async def test_the_pool_keeps_at_most_max_idle_connections() -> None:
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def slow(received: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.3)  # the four calls overlap, so each needs its own connection
        writer.write(OK)
        return True

    with scripted_upstream(slow) as upstream:
        lean = client(max_idle=2)
        await asyncio.gather(*(fetch(lean, url(upstream)) for _ in range(4)))
        assert upstream.connections == 4
        assert lean.idle_connections == 2 and lean.open_connections == 2
        await wait_until(lambda: upstream.open_connections == 2)
        await lean.aclose()
        await wait_until(lambda: upstream.open_connections == 0)
    del gate, loop


async def test_an_idle_connection_the_server_closed_is_dropped_and_never_used() -> None:
    with scripted_upstream(always(OK, keep=False)) as upstream:  # closes after each answer
        lean = client()
        await fetch(lean, url(upstream))
        await wait_until(lambda: lean.idle_connections == 0)  # connection_lost emptied it
        answer, data = await fetch(lean, url(upstream))
        assert answer.status == 200 and data == b'{"ok": true}'
        assert upstream.connections == 2
        await lean.aclose()


async def test_a_pooled_connection_expires_after_idling_not_after_its_first_use() -> None:
    """The pool's idle timer runs on while a connection is in use and, when it fires,
    measures the idleness since the connection came back: one reused every 0.15 s outlives
    several 0.4 s idle periods, then expires once left alone."""
    with scripted_upstream(always(OK)) as upstream:
        lean = client(keepalive_idle=0.4)
        for _ in range(8):  # 1.2 s of calls on the same connection
            await fetch(lean, url(upstream))
            assert lean.open_connections == 1
            await asyncio.sleep(0.15)
        assert upstream.connections == 1
        came_back = time.monotonic()
        await wait_until(lambda: lean.open_connections == 0)
        assert time.monotonic() - came_back >= 0.2
        await lean.aclose()


async def test_idle_pooled_connections_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    with scripted_upstream(always(OK)) as upstream:
        lean = client(keepalive_idle=0.2)
        await fetch(lean, url(upstream))
        assert lean.idle_connections == 1
        await wait_until(lambda: lean.open_connections == 0)
        await wait_until(lambda: upstream.open_connections == 0)
        await lean.aclose()


def _stale_after_first(upstream_box: list[ScriptedUpstream]):  # type: ignore[no-untyped-def]
    """Answers the first request of each connection; closes on a second one unanswered."""

    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        if any(
            earlier.connection == received.connection and earlier is not received
            for earlier in upstream_box[0].requests
        ):
            return False  # the request crossed the server's close of an idle connection
        writer.write(OK)
        return True

    return answer


async def test_a_get_on_a_connection_that_died_unanswered_is_sent_again() -> None:
    box: list[ScriptedUpstream] = []
    with scripted_upstream(_stale_after_first(box)) as upstream:
        box.append(upstream)
        lean = client()
        await fetch(lean, url(upstream))
        answer, data = await fetch(lean, url(upstream))
        assert answer.status == 200 and data == b'{"ok": true}'
        assert [r.connection for r in upstream.requests] == [1, 1, 2]  # GET is idempotent
        await lean.aclose()


async def test_a_post_the_upstream_read_is_never_sent_twice() -> None:
    """Issue 18 hole 1: fal read the POST, then the kept-alive connection died unanswered."""
    box: list[ScriptedUpstream] = []
    with scripted_upstream(_stale_after_first(box)) as upstream:
        box.append(upstream)
        lean = client()
        await fetch(lean, url(upstream))
        with pytest.raises(UpstreamUnavailable) as refused:
            await fetch(lean, url(upstream), method="POST", body=b'{"prompt": "x"}')
        assert [r.connection for r in upstream.requests] == [1, 1]  # delivered once
        assert "never sent twice" in (refused.value.cause or "")
        await lean.aclose()


async def test_a_post_the_upstream_dropped_after_working_is_a_502() -> None:
    """The upstream reads the POST, works a while, then closes (FIN) without answering."""
    seen: list[Received] = []

    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        seen.append(received)
        if len([r for r in seen if r.connection == received.connection]) == 1:
            writer.write(OK)
            return True
        await asyncio.sleep(0.3)
        return False

    with scripted_upstream(answer) as upstream:
        lean = client()
        await fetch(lean, url(upstream))
        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream), method="POST", body=b"{}")
        assert len(seen) == 2 and upstream.connections == 1
        await lean.aclose()


async def test_bytes_after_a_complete_response_are_never_merged_into_it() -> None:
    """Issue 18 hole 5: a second response in the same read, or a body on a 204."""
    injected = response("299 Injected", b"evil", "x-injected: 1")
    for first in (OK, b"HTTP/1.1 204 No Content\r\n\r\n"):
        with scripted_upstream(always(first + injected)) as upstream:
            lean = client()
            answer, data = await fetch(lean, url(upstream))
            assert answer.status == int(first[9:12])
            assert all(name.lower() != b"x-injected" for name, _ in answer.headers)
            assert b"evil" not in data
            assert lean.idle_connections == 0  # the connection is never reused
            answer, _ = await fetch(lean, url(upstream))
            assert answer.status == int(first[9:12]) and upstream.connections == 2
            await lean.aclose()


async def test_a_streamed_body_is_never_retried() -> None:
    box: list[ScriptedUpstream] = []
    with scripted_upstream(_stale_after_first(box)) as upstream:
        box.append(upstream)
        lean = client()
        await fetch(lean, url(upstream))

        async def stream() -> AsyncIterator[bytes]:
            yield b"{}"

        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream), method="POST", body=stream())
        assert [r.connection for r in upstream.requests] == [1, 1]
        await lean.aclose()


# -- response framing --------------------------------------------------------------------------


async def test_chunked_content_length_and_close_framed_bodies() -> None:
    answers = {
        b"/chunked": (
            response("200 OK", chunked(b"ab", b"cd"), "transfer-encoding: chunked", length=False),
            True,
        ),
        b"/length": (response("200 OK", b"abcd"), True),
        b"/close": (response("200 OK", b"abcd", length=False), False),
    }

    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        data, keep = answers[received.path]
        writer.write(data)
        return keep

    with scripted_upstream(answer) as upstream:
        lean = client()
        for path, pooled in ((b"/chunked", 1), (b"/close", 0), (b"/length", 1)):
            result, data = await fetch(lean, url(upstream, path.decode()))
            assert data == b"abcd" and result.complete, path
            assert lean.idle_connections == pooled, path
        assert upstream.connections == 2  # the close-framed answer's connection was not kept
        await lean.aclose()


async def test_head_and_204_answers_have_no_body_and_keep_the_connection() -> None:
    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        if received.head.startswith(b"HEAD"):
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        return True

    with scripted_upstream(answer) as upstream:
        lean = client()
        for method in ("HEAD", "DELETE", "HEAD"):
            result, data = await fetch(lean, url(upstream), method=method, head_timeout=2)
            assert data == b"" and result.complete, method
        assert upstream.connections == 1
        await lean.aclose()


async def test_a_truncated_chunked_body_breaks_and_the_connection_is_not_pooled() -> None:
    cut = response(
        "200 OK", chunked(b"abcd", end=False), "transfer-encoding: chunked", length=False
    )
    with scripted_upstream(always(cut, keep=False)) as upstream:
        lean = client()
        answer = await lean.request("GET", url(upstream), [], None, head_timeout=5)
        assert await answer.read_chunk() == b"abcd"
        with pytest.raises(UpstreamBroken):
            await answer.read_chunk()
        assert not answer.complete
        answer.release()
        assert lean.idle_connections == 0
        await wait_until(lambda: lean.open_connections == 0)
        await lean.aclose()


async def test_a_malformed_chunk_breaks_the_body() -> None:
    bad = response("200 OK", b"zz\r\nabcd\r\n", "transfer-encoding: chunked", length=False)
    with scripted_upstream(always(bad)) as upstream:
        lean = client()
        with pytest.raises(UpstreamBroken):
            await fetch(lean, url(upstream))
        assert lean.open_connections == 0
        await lean.aclose()


async def test_a_redirect_is_returned_not_followed() -> None:
    moved = response("302 Found", b"", "location: http://127.0.0.1:1/elsewhere")
    with scripted_upstream(always(moved)) as upstream:
        lean = client()
        answer, _ = await fetch(lean, url(upstream))
        assert answer.status == 302
        assert (b"location", b"http://127.0.0.1:1/elsewhere") in answer.headers
        assert len(upstream.requests) == 1
        await lean.aclose()


async def test_gzip_bytes_pass_unchanged() -> None:
    packed = gzip.compress(b'{"status": "COMPLETED"}' * 50)
    with scripted_upstream(always(response("200 OK", packed, "content-encoding: gzip"))) as up:
        lean = client()
        answer, data = await fetch(lean, url(up))
        assert data == packed
        assert (b"content-encoding", b"gzip") in answer.headers
        await lean.aclose()


async def test_interim_responses_are_skipped() -> None:
    with scripted_upstream(always(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + OK)) as up:
        lean = client()
        answer, data = await fetch(lean, url(up))
        assert answer.status == 200 and data == b'{"ok": true}'
        assert all(name != b"link" for name, _ in answer.headers)
        await lean.aclose()


# -- failures before and after the head --------------------------------------------------------


async def test_a_slow_head_is_a_504() -> None:
    async def stall(received: Received, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3)
        return False

    with scripted_upstream(stall) as upstream:
        lean = client()
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await lean.request("GET", url(upstream), [], None, head_timeout=0.3)
        assert time.monotonic() - started < 2
        assert lean.open_connections == 0
        await lean.aclose()


async def test_a_silent_body_breaks_after_the_idle_timeout() -> None:
    async def stall(received: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(response("200 OK", b"ab", "content-length: 10", length=False))
        await writer.drain()
        await asyncio.sleep(3)
        return False

    with scripted_upstream(stall) as upstream:
        lean = client(idle_timeout=0.3)
        answer = await lean.request("GET", url(upstream), [], None, head_timeout=5)
        assert await answer.read_chunk() == b"ab"
        started = time.monotonic()
        with pytest.raises(UpstreamBroken):
            await answer.read_chunk()
        assert time.monotonic() - started < 2
        answer.release()
        assert lean.open_connections == 0
        await lean.aclose()


async def test_a_head_over_the_limit_is_a_502() -> None:
    filler = "x" * 1000
    many = [f"x-filler-{n}: {filler}" for n in range(MAX_RESPONSE_HEAD_BYTES // 1000 + 2)]
    huge_one = [f"x-big: {'y' * (MAX_RESPONSE_HEAD_BYTES + 10)}"]
    just_under = [f"x-filler-{n}: {filler}" for n in range(MAX_RESPONSE_HEAD_BYTES // 1000 - 4)]
    answers = {
        b"/many": response("200 OK", b"", *many),
        b"/one": response("200 OK", b"", *huge_one),
        b"/under": response("200 OK", b"ok", *just_under),
    }

    async def answer(received: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(answers[received.path])
        return True

    with scripted_upstream(answer) as upstream:
        lean = client()
        for path in ("/many", "/one"):
            with pytest.raises(UpstreamUnavailable):
                await fetch(lean, url(upstream, path))
        _, data = await fetch(lean, url(upstream, "/under"))
        assert data == b"ok"
        await lean.aclose()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 2000 OK\r\ncontent-length: 0\r\n\r\n",
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
    ],
)
async def test_a_malformed_head_is_a_502(answer: bytes) -> None:
    with scripted_upstream(always(answer, keep=False)) as upstream:
        lean = client()
        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream))
        assert lean.open_connections == 0
        await lean.aclose()


async def test_connection_refused_is_a_502() -> None:
    lean = client()
    with pytest.raises(UpstreamUnavailable):
        await lean.request("GET", f"http://127.0.0.1:{closed_port()}/x", [], None, head_timeout=5)
    await lean.aclose()


async def test_a_closed_connection_before_the_head_is_a_502() -> None:
    with scripted_upstream(always(b"", keep=False)) as upstream:
        lean = client()
        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream))
        await lean.aclose()


# -- the request bytes -------------------------------------------------------------------------


async def test_the_request_is_sent_exactly_as_given() -> None:
    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        headers = [
            (b"authorization", b"Key id:secret"),
            (b"X-Custom", b"a  b"),
            (b"accept", b"*/*"),
        ]
        target = url(upstream, "/fal-ai/a%2Fb/%7Ex;p?q=%20&r=a+b&&s")
        await fetch(lean, target, headers=headers)
        await fetch(lean, target, method="POST", headers=[(b"content-length", b"2")], body=b"{}")
        await fetch(lean, target, method="POST", body=b"[]")
        await fetch(lean, target, method="POST")
        await fetch(lean, f"http://127.0.0.1:{upstream.port}?x=1", headers=[(b"host", b"fal.run")])
        host = f"127.0.0.1:{upstream.port}".encode()
        path = b"/fal-ai/a%2Fb/%7Ex;p?q=%20&r=a+b&&s"
        assert [(r.head, r.body) for r in upstream.requests] == [
            (
                b"GET " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\n"
                b"authorization: Key id:secret\r\nX-Custom: a  b\r\naccept: */*\r\n\r\n",
                b"",
            ),
            (
                b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\ncontent-length: 2\r\n\r\n",
                b"{}",
            ),
            (
                b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 2\r\n\r\n",
                b"[]",
            ),
            (
                b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n\r\n",
                b"",
            ),
            (b"GET /?x=1 HTTP/1.1\r\nhost: fal.run\r\n\r\n", b""),
        ]
        assert upstream.connections == 1
        await lean.aclose()


async def test_the_default_port_is_left_out_of_host() -> None:
    from falproxy.client.request import parse_target

    assert parse_target("https://fal.run:443/a").host_header == b"fal.run"
    assert parse_target("https://fal.run/a").host_header == b"fal.run"
    assert parse_target("http://[::1]:8080/a?b").host_header == b"[::1]:8080"
    assert parse_target("http://[::1]:8080/a?b").host == "::1"
    assert parse_target("http://h?b").path == b"/?b"


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-bad", b"a\r\nx-smuggled: 1")],
        [(b"content-length", b"5")],  # does not match the 2-byte body
        [(b"content-length", b"2"), (b"content-length", b"3")],
    ],
)
async def test_headers_that_would_change_the_framing_are_refused(
    headers: list[tuple[bytes, bytes]],
) -> None:
    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream), method="POST", headers=headers, body=b"{}")
        assert upstream.raw_bytes == 0
        await lean.aclose()


async def test_a_streamed_body_goes_out_chunked() -> None:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b'{"a":', b"", b' "bc"}'):
            yield part

    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        await fetch(lean, url(upstream), method="POST", body=parts())
        (received,) = upstream.requests
        assert received.head.endswith(b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert received.body == b'5\r\n{"a":\r\n6\r\n "bc"}\r\n0\r\n\r\n'
        await lean.aclose()


async def test_a_streamed_body_with_a_length_is_sent_raw_and_must_match_it() -> None:
    async def parts(*chunks: bytes) -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        length = [(b"content-length", b"4")]
        await fetch(lean, url(upstream), method="PUT", headers=length, body=parts(b"ab", b"cd"))
        assert upstream.requests[0].body == b"abcd"
        with pytest.raises(UpstreamUnavailable):
            await fetch(
                lean, url(upstream), method="PUT", headers=length, body=parts(b"abc", b"de")
            )
        assert len(upstream.requests) == 1  # the over-long body never framed a request
        await lean.aclose()


class BodyStopped(Exception):
    """What a request-body iterator raises (the relay's 413, 408 or client gone)."""


async def test_a_body_iterator_error_propagates_unchanged() -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b"abc"
        raise BodyStopped()

    with scripted_upstream(always(OK)) as upstream:
        lean = client()
        with pytest.raises(BodyStopped):
            await lean.request("POST", url(upstream), [], parts(), head_timeout=5)
        assert lean.open_connections == 0
        # The server may see the connection only after the client dropped it.
        await wait_until(lambda: upstream.connections == 1 and upstream.open_connections == 0)
        await lean.aclose()


# -- back-pressure -----------------------------------------------------------------------------


async def test_a_slow_reader_keeps_the_client_buffer_bounded() -> None:
    total = 50 * 1024 * 1024
    block = b"x" * (1024 * 1024)

    async def flood(received: Received, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % total)
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
        return True

    with scripted_upstream(flood) as upstream:
        lean = client()
        answer = await lean.request("GET", url(upstream), [], None, head_timeout=5)
        received, peak, reads = 0, 0, 0
        deadline = time.monotonic() + 60
        while chunk := await answer.read_chunk():
            received += len(chunk)
            reads += 1
            peak = max(peak, answer.buffered, len(chunk))
            if reads % 4 == 0:
                await asyncio.sleep(0.002)  # a slow reader: the socket outpaces it
            assert time.monotonic() < deadline
        answer.release()
        assert received == total and answer.complete
        assert peak <= READ_HIGH_WATER + ONE_READ, peak
        await lean.aclose()


async def test_a_streamed_body_waits_for_the_upstream_to_read() -> None:
    """A body far larger than the socket buffers: each chunk waits for the transport to drain,
    so the client's write buffer holds about one chunk, never the whole body."""
    size = 32 * 1024 * 1024
    piece = b"y" * (1024 * 1024)
    lean = client()
    peak = 0

    async def parts() -> AsyncIterator[bytes]:
        nonlocal peak
        for _ in range(size // len(piece)):
            for conn in lean._live:
                assert conn.transport is not None
                peak = max(peak, conn.transport.get_write_buffer_size())
            yield piece

    with scripted_upstream(always(OK)) as upstream:
        await fetch(lean, url(upstream), method="POST", body=parts(), head_timeout=30)
        assert len(upstream.requests[0].body) > size
        await lean.aclose()
    assert peak <= 2 * len(piece), peak


# -- TLS ----------------------------------------------------------------------------------------


async def test_tls_with_a_trusted_ca_works(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    with scripted_upstream(always(OK), tls=pki.server_context()) as upstream:
        lean = client(ca_file=str(pki.ca))
        for _ in range(3):
            answer, data = await fetch(lean, url(upstream, scheme="https"))
            assert answer.status == 200 and data == b'{"ok": true}'
        assert upstream.connections == 1
        await lean.aclose()


async def test_tls_with_an_untrusted_ca_is_a_502_and_nothing_is_sent(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "server")
    other = make_pki(tmp_path / "other")
    with scripted_upstream(always(OK), tls=pki.server_context()) as upstream:
        for lean in (client(ca_file=str(other.ca)), client()):  # a foreign CA, the system store
            with pytest.raises(UpstreamUnavailable):
                await fetch(lean, url(upstream, scheme="https"))
            await lean.aclose()
        assert upstream.raw_bytes == 0 and upstream.requests == []


async def test_tls_with_the_wrong_name_is_a_502_and_nothing_is_sent(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, names=("upstream.example.test",))
    with scripted_upstream(always(OK), tls=pki.server_context()) as upstream:
        lean = client(ca_file=str(pki.ca))
        with pytest.raises(UpstreamUnavailable):
            await fetch(lean, url(upstream, scheme="https"))
        assert upstream.raw_bytes == 0 and upstream.requests == []
        await lean.aclose()


# -- the same on uvloop (what `falproxy serve` runs; the cases above run on asyncio's loop) --

UVLOOP_CASES = [
    test_sequential_calls_share_one_kept_alive_connection,
    test_an_idle_connection_the_server_closed_is_dropped_and_never_used,
    test_a_get_on_a_connection_that_died_unanswered_is_sent_again,
    test_a_post_the_upstream_read_is_never_sent_twice,
    test_bytes_after_a_complete_response_are_never_merged_into_it,
    test_chunked_content_length_and_close_framed_bodies,
    test_head_and_204_answers_have_no_body_and_keep_the_connection,
    test_a_truncated_chunked_body_breaks_and_the_connection_is_not_pooled,
    test_a_head_over_the_limit_is_a_502,
    test_a_silent_body_breaks_after_the_idle_timeout,
    test_the_request_is_sent_exactly_as_given,
    test_a_streamed_body_goes_out_chunked,
    test_a_body_iterator_error_propagates_unchanged,
    test_a_slow_reader_keeps_the_client_buffer_bounded,
    test_a_streamed_body_waits_for_the_upstream_to_read,
]
TLS_UVLOOP_CASES = [
    test_tls_with_a_trusted_ca_works,
    test_tls_with_an_untrusted_ca_is_a_502_and_nothing_is_sent,
    test_tls_with_the_wrong_name_is_a_502_and_nothing_is_sent,
]


@pytest.mark.parametrize("case", UVLOOP_CASES, ids=lambda case: case.__name__[5:])
def test_on_uvloop(case) -> None:  # type: ignore[no-untyped-def]
    uvloop.run(case())


@pytest.mark.parametrize("case", TLS_UVLOOP_CASES, ids=lambda case: case.__name__[5:])
def test_tls_on_uvloop(case, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uvloop.run(case(tmp_path))
