"""Optional OpenTelemetry tracing: one span per proxied call and per socket.

``pip install 'falproxy[otel]'`` and the standard variables turn it on
(``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``,
``OTEL_TRACES_SAMPLER``, ...), or an application that already installed a tracer provider
(``opentelemetry-instrument``, its own set-up) gets falproxy's spans in its traces.
Otherwise every front end holds :data:`NO_TRACING`, whose calls do nothing and import
nothing.

The API the call lifecycle uses::

    span = tracing.start(kind, method, request_headers)  # continues an incoming traceparent
    span.inject(upstream_headers)                         # fal sees this span as its parent
    span.end(event)                                       # attributes from the ProxyEvent

A span carries the call's app id, status, outcome, bytes and the identity's id, taken from
the :class:`ProxyEvent`, which by construction holds no key, header value or URL query.
Only the W3C ``traceparent``/``tracestate`` headers are read from the client and written
to fal: never baggage, which would forward whatever a browser put in it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from falproxy.core.errors import ConfigError
from falproxy.core.events import ProxyEvent
from falproxy.core.headers import Headers

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger("falproxy")

INSTRUMENTATION_NAME = "falproxy"
DEFAULT_SERVICE_NAME = "falproxy"
# The W3C Trace Context headers (https://www.w3.org/TR/trace-context/), lower case.
TRACE_HEADERS = frozenset({b"traceparent", b"tracestate"})
# An app id in a span is cut like the metrics label: refused calls carry attacker text.
MAX_APP_ATTRIBUTE_LENGTH = 100
# What OTEL_TRACES_EXPORTER may name here; the OTLP exporter reads its own OTEL_* settings.
EXPORTERS = ("otlp", "console", "none")
OTEL_EXTRA_HINT = "pip install 'falproxy[otel]'"

_configure_lock = threading.Lock()


class CallSpan(Protocol):
    """One call's span, from the request head to its event."""

    def inject(self, headers: Headers) -> None:
        """Replace any trace headers in ``headers`` (sent to fal) with this span's."""

    def carrier(self) -> dict[str, str]:
        """This span's trace headers, for clients that take text headers (WebSocket)."""

    def end(self, event: ProxyEvent) -> None:
        """Record what happened and end the span; called exactly once per call."""


class _NoSpan:
    """The span of a call when tracing is off: every method returns at once."""

    __slots__ = ()

    def inject(self, headers: Headers) -> None:
        return None

    def carrier(self) -> dict[str, str]:
        return {}

    def end(self, event: ProxyEvent) -> None:
        return None


NO_SPAN = _NoSpan()


class Tracing:
    """Tracing switched off: the default of every proxy."""

    enabled = False

    def start(
        self, kind: str, method: str, request_headers: Iterable[tuple[bytes, bytes]]
    ) -> CallSpan:
        return NO_SPAN


NO_TRACING = Tracing()


class OtelTracing(Tracing):
    """Spans through an OpenTelemetry tracer (from the global provider unless given one)."""

    enabled = True

    def __init__(self, provider: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        source = provider if provider is not None else trace.get_tracer_provider()
        self._tracer: Tracer = source.get_tracer(INSTRUMENTATION_NAME)
        self._propagator = TraceContextTextMapPropagator()
        self._server_kind = trace.SpanKind.SERVER

    def start(
        self, kind: str, method: str, request_headers: Iterable[tuple[bytes, bytes]]
    ) -> CallSpan:
        incoming = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in request_headers
            if name in TRACE_HEADERS
        }
        parent = self._propagator.extract(incoming) if incoming else None
        span = self._tracer.start_span(
            f"falproxy {kind}",
            context=parent,
            kind=self._server_kind,
            attributes={"falproxy.kind": kind, "http.request.method": method},
        )
        return _OtelSpan(span, self._propagator)


class _OtelSpan:
    __slots__ = ("_propagator", "_span")

    def __init__(self, span: Span, propagator: Any) -> None:
        self._span = span
        self._propagator = propagator

    def carrier(self) -> dict[str, str]:
        from opentelemetry import trace

        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(self._span))
        return carrier

    def inject(self, headers: Headers) -> None:
        headers[:] = [(name, value) for name, value in headers if name not in TRACE_HEADERS]
        headers.extend(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.carrier().items()
        )

    def end(self, event: ProxyEvent) -> None:
        from opentelemetry.trace import Status, StatusCode

        span = self._span
        attributes: dict[str, str | int | float | bool] = {
            "falproxy.outcome": event.outcome,
            "falproxy.admitted": event.admitted,
            "falproxy.bytes_up": event.bytes_up,
            "falproxy.bytes_down": event.bytes_down,
            "falproxy.duration_seconds": event.duration_seconds,
        }
        if event.status:
            attributes["http.response.status_code"] = event.status
        if event.app_id:
            attributes["falproxy.app_id"] = event.app_id[:MAX_APP_ATTRIBUTE_LENGTH]
        if event.identity:
            attributes["enduser.id"] = event.identity
        if event.request_id:
            attributes["falproxy.request_id"] = event.request_id
        if event.first_byte_seconds is not None:
            attributes["falproxy.first_byte_seconds"] = event.first_byte_seconds
        if event.billable_units is not None:  # spend budgets (admission/spend.py)
            attributes["falproxy.billable_units"] = event.billable_units
        if event.cost_usd is not None:
            attributes["falproxy.cost_usd"] = event.cost_usd
        if event.kind == "websocket":
            attributes["falproxy.frames_up"] = event.frames_up
            attributes["falproxy.frames_down"] = event.frames_down
            if event.close_code is not None:
                attributes["falproxy.close_code"] = event.close_code
        span.set_attributes(attributes)
        if event.status >= 500 or event.outcome == "upstream_error":
            span.set_status(Status(StatusCode.ERROR, event.outcome))
        span.end()


def tracing_from_env(env: Mapping[str, str] | None = None) -> Tracing:
    """The tracing a proxy uses: off unless configured, and a no-op without the extra.

    On when an application already installed a tracer provider, or when the ``OTEL_*``
    variables ask for an exporter (then a provider is built once per process and set
    globally, so other instrumentation shares it). ``OTEL_SDK_DISABLED=true`` wins.
    """
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return NO_TRACING
    try:
        from opentelemetry import trace
    except ImportError:
        if _asks_for_export(env):  # e.g. a cluster-wide OTLP endpoint: say so, keep serving
            _warn_once(
                f"OTEL_* tracing variables are set but OpenTelemetry is not installed "
                f"({OTEL_EXTRA_HINT}); tracing is off"
            )
        return NO_TRACING
    if _has_provider(trace.get_tracer_provider()):
        return OtelTracing()
    if not _asks_for_export(env):
        return NO_TRACING
    with _configure_lock:
        if not _has_provider(trace.get_tracer_provider()):
            provider = build_provider(env)
            if provider is None:
                return NO_TRACING
            trace.set_tracer_provider(provider)
    return OtelTracing()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Every proxy instance asks; the operator needs to read it once per process."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def _asks_for_export(env: Mapping[str, str]) -> bool:
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def _has_provider(provider: object) -> bool:
    """Whether someone installed a real provider (not the API's placeholder or no-op)."""
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider

    return not isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)


def build_provider(env: Mapping[str, str]) -> Any:
    """An SDK tracer provider exporting as ``OTEL_TRACES_EXPORTER`` says (default otlp).

    ``None`` (with a warning) when the SDK is missing; an exporter name this module does
    not know is a configuration error, since the user asked for it explicitly.
    """
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SpanExporter,
        )
    except ImportError:  # the API came with another package, the SDK did not
        _warn_once(f"tracing needs the OpenTelemetry SDK ({OTEL_EXTRA_HINT}); tracing is off")
        return None
    names = [
        n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()
    ]
    unknown = sorted(set(names) - set(EXPORTERS))
    if unknown:
        raise ConfigError(
            f"OTEL_TRACES_EXPORTER={','.join(unknown)} is not supported here; use one of "
            f"{', '.join(EXPORTERS)}"
        )
    # Resource.create reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; the default
    # service name would be "unknown_service", which helps nobody.
    named = env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    resource = Resource.create({} if named else {"service.name": DEFAULT_SERVICE_NAME})
    provider = TracerProvider(resource=resource)  # the sampler comes from OTEL_TRACES_SAMPLER
    exported = []
    for name in names:
        exporter: SpanExporter
        if name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            except ImportError:
                _warn_once(f"the OTLP span exporter is missing ({OTEL_EXTRA_HINT}); skipped")
                continue
            exporter = OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
        elif name == "console":
            exporter = ConsoleSpanExporter()
        else:
            continue
        provider.add_span_processor(BatchSpanProcessor(exporter))
        exported.append(name)
    logger.info("tracing: OpenTelemetry spans exported to %s", ", ".join(exported) or "nowhere")
    return provider
