"""OpenTelemetry tracing (issue 13) against a live proxy and the fake fal, with the SDK's
in-memory exporter: one span per call and per socket, the incoming ``traceparent``
continued, the proxy's span propagated to fal, and never the key or the URL query.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from websockets.sync.client import connect

from falproxy import FalProxy
from falproxy.ops.tracing import NO_TRACING, OtelTracing, tracing_from_env
from falproxy.wsgi.proxy import SyncFalProxy
from tests.conftest import TEST_KEY, TEST_KEY_SECRET, proxy_config, serve
from tests.support.hook_support import ROUTE, bearer
from tests.support.procs import FALPROXY, free_port, proxy_env, stop, wait_until_up
from tests.support.ws_helpers import last_session, pack, relay_url, reset_realtime, unpack

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
INCOMING = f"00-{TRACE_ID}-{PARENT_ID}-01"
SECRET_QUERY = "sig=do-not-trace-me"
ECHO = f"https://fal.run/fake/echo?{SECRET_QUERY}"
TOKENS = ("t0k3n",)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracing(exporter: InMemorySpanExporter) -> Iterator[OtelTracing]:
    """A provider of the test's own: the process-wide one stays unset for other tests."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield OtelTracing(provider)
    provider.shutdown()


@pytest.fixture
def proxy_url(fake_url: str, tracing: OtelTracing) -> Iterator[str]:
    proxy = FalProxy(proxy_config(fake_url, auth_tokens=TOKENS))
    proxy.calls.tracing = tracing
    with serve(proxy) as url:
        yield url


def ids(span: ReadableSpan) -> tuple[str, str]:
    context = span.get_span_context()
    assert context is not None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def assert_clean(span: ReadableSpan) -> None:
    """Neither the key (either half) nor the target's query in any attribute."""
    text = json.dumps(dict(span.attributes or {})) + span.name
    for secret in (TEST_KEY, TEST_KEY_SECRET, SECRET_QUERY, "do-not-trace-me", TOKENS[0]):
        assert secret not in text


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    spans = exporter.get_finished_spans()
    assert len(spans) == 1, spans
    return spans[0]


def test_a_call_continues_the_trace_and_fal_sees_the_proxy_span(
    proxy_url: str, exporter: InMemorySpanExporter
) -> None:
    headers = {"x-fal-target-url": ECHO, "traceparent": INCOMING, **bearer(TOKENS[0])}
    response = httpx.post(proxy_url + ROUTE, headers=headers, json={"a": 1}, timeout=30)
    assert response.status_code == 200
    span = only_span(exporter)
    trace_id, span_id = ids(span)
    assert trace_id == TRACE_ID and span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT_ID
    assert span.kind == SpanKind.SERVER
    received = response.json()["headers"]["traceparent"]
    assert received == f"00-{TRACE_ID}-{span_id}-01", "fal's parent is the proxy's span"
    attributes = dict(span.attributes or {})
    assert attributes["falproxy.app_id"] == "fake/echo"
    assert attributes["http.response.status_code"] == 200
    assert attributes["falproxy.outcome"] == "ok"
    assert attributes["falproxy.bytes_up"] == len(b'{"a":1}')
    assert attributes["falproxy.bytes_down"] == len(response.content)
    assert attributes["enduser.id"] == "token-1"
    assert_clean(span)


def test_a_call_without_traceparent_starts_a_trace(
    proxy_url: str, exporter: InMemorySpanExporter
) -> None:
    headers = {"x-fal-target-url": ECHO, **bearer(TOKENS[0])}
    response = httpx.post(proxy_url + ROUTE, headers=headers, json={}, timeout=30)
    span = only_span(exporter)
    trace_id, span_id = ids(span)
    assert span.parent is None
    # Flags: sampled, and in newer SDKs the W3C level-2 "random" bit.
    assert response.json()["headers"]["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


def test_refused_and_failed_calls_have_spans(
    proxy_url: str, exporter: InMemorySpanExporter
) -> None:
    refused = httpx.post(proxy_url + ROUTE, headers={"x-fal-target-url": ECHO}, timeout=30)
    assert refused.status_code == 401
    failing = {"x-fal-target-url": "https://fal.run/fake/status/503", **bearer(TOKENS[0])}
    assert httpx.post(proxy_url + ROUTE, headers=failing, json={}, timeout=30).status_code == 503
    first, second = exporter.get_finished_spans()
    assert dict(first.attributes or {})["http.response.status_code"] == 401
    assert dict(first.attributes or {})["falproxy.admitted"] is False
    assert second.status.status_code == StatusCode.ERROR
    for span in (first, second):
        assert_clean(span)


def test_a_socket_has_one_span_and_fal_sees_it(
    proxy_url: str, fake_url: str, exporter: InMemorySpanExporter
) -> None:
    reset_realtime(fake_url)
    url = relay_url(proxy_url)
    headers = {"traceparent": INCOMING, **bearer(TOKENS[0])}
    with connect(url, additional_headers=headers, open_timeout=10) as socket:
        socket.send(pack({"prompt": "a fox", "request_id": "r1"}))
        assert unpack(socket.recv(timeout=10))
    session = last_session(fake_url)
    span = only_span(exporter)
    trace_id, span_id = ids(span)
    assert trace_id == TRACE_ID
    assert session["headers"]["traceparent"] == f"00-{TRACE_ID}-{span_id}-01"
    attributes = dict(span.attributes or {})
    assert attributes["falproxy.kind"] == "websocket"
    assert attributes["http.response.status_code"] == 101
    assert attributes["falproxy.frames_up"] == 1 and attributes["falproxy.frames_down"] >= 1
    assert attributes["enduser.id"] == "token-1"
    assert_clean(span)


def test_the_wsgi_pipeline_traces_too(
    fake_url: str, tracing: OtelTracing, exporter: InMemorySpanExporter
) -> None:
    proxy = SyncFalProxy(proxy_config(fake_url, auth_tokens=TOKENS))
    proxy.calls.tracing = tracing
    headers = [
        (b"x-fal-target-url", ECHO.encode()),
        (b"traceparent", INCOMING.encode()),
        (b"authorization", f"Bearer {TOKENS[0]}".encode()),
    ]
    try:
        reply = proxy.call("GET", headers, io.BytesIO())
        body = b"".join(reply.body)
        getattr(reply.body, "close", lambda: None)()
    finally:
        proxy.close()
    span = only_span(exporter)
    trace_id, span_id = ids(span)
    assert trace_id == TRACE_ID
    assert json.loads(body)["headers"]["traceparent"] == f"00-{TRACE_ID}-{span_id}-01"
    assert dict(span.attributes or {})["http.response.status_code"] == 200
    assert_clean(span)


def test_off_unless_configured_and_the_client_traceparent_passes_as_before(
    fake_url: str,
) -> None:
    assert tracing_from_env({}) is NO_TRACING
    assert tracing_from_env({"OTEL_TRACES_EXPORTER": "none"}) is NO_TRACING
    proxy = FalProxy(proxy_config(fake_url, allow_anonymous=True))
    assert proxy.calls.tracing is NO_TRACING
    with serve(proxy) as url:
        headers = {"x-fal-target-url": ECHO, "traceparent": INCOMING}
        response = httpx.post(url + ROUTE, headers=headers, json={}, timeout=30)
    assert response.json()["headers"]["traceparent"] == INCOMING


def test_without_the_extra_tracing_is_off_and_says_what_to_install() -> None:
    """Simulates a plain install: opentelemetry cannot be imported."""
    script = (
        "import logging, sys; sys.modules['opentelemetry'] = None\n"
        "logging.basicConfig(stream=sys.stdout, format='%(levelname)s %(message)s')\n"
        "from falproxy.ops.tracing import tracing_from_env, NO_TRACING\n"
        "assert tracing_from_env({}) is NO_TRACING\n"
        "asked = {'OTEL_EXPORTER_OTLP_ENDPOINT': 'http://127.0.0.1:4318'}\n"
        "assert tracing_from_env(asked) is NO_TRACING\n"
        "assert tracing_from_env(asked) is NO_TRACING\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING"), "one warning per process"
    assert "pip install 'falproxy[otel]'" in lines[0]


def test_serve_exports_spans_configured_by_otel_variables(fake_url: str) -> None:
    """The standard variables alone: the console exporter prints each span on stdout."""
    port = free_port()
    env = proxy_env(fake_url, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="edge-proxy")
    command = [FALPROXY, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
            headers = {"x-fal-target-url": ECHO, "traceparent": INCOMING}
            response = httpx.post(f"http://127.0.0.1:{port}{ROUTE}", headers=headers, timeout=30)
            assert response.status_code == 200
        finally:
            stop(process)
        assert process.stdout is not None
        output = process.stdout.read()
    assert '"name": "falproxy http"' in output and f"0x{TRACE_ID}" in output
    assert '"service.name": "edge-proxy"' in output
    assert SECRET_QUERY not in output and TEST_KEY_SECRET not in output
