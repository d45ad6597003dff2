"""Where every call starts and ends: the open-calls gauge, its span, the access log,
metrics and the ``on_event`` hooks.

Every front end opens a :class:`Call` here when a request arrives and closes it here when
the call ends, so each call is counted, traced, logged, measured and given to the hooks
exactly once, whichever front end served it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from falproxy.config.settings import ProxyConfig
from falproxy.core.events import ProxyEvent
from falproxy.core.hooks import emit
from falproxy.core.lifecycle import HTTP, WEBSOCKET, CallRecord
from falproxy.ops.logs import install_default_access_log, json_logs, log_event
from falproxy.ops.metrics import ProxyMetrics
from falproxy.ops.tracing import CallSpan, Tracing


@dataclass(slots=True)
class Call:
    """One call in flight: its record (what happened) and its span (where it is traced)."""

    record: CallRecord
    span: CallSpan


class CallLog:
    """Opens and closes the calls of one proxy."""

    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics, tracing: Tracing) -> None:
        self.metrics = metrics
        self.tracing = tracing
        # labels() takes a lock and validates: resolved once per kind, not twice per call.
        self._open = {HTTP: metrics.open_http, WEBSOCKET: metrics.open_websocket}
        self._json = json_logs(config)
        install_default_access_log(self._json)  # mounted proxies log their calls too
        self._on_event = config.on_event

    def open(self, kind: str, method: str, headers: Iterable[tuple[bytes, bytes]]) -> Call:
        """A new call: counted as open until :meth:`close`, its span continuing the client's."""
        self._open[kind].inc()
        return Call(CallRecord(kind, method), self.tracing.start(kind, method, headers))

    async def close(self, call: Call) -> None:
        """The call ended: one event to its span, the log, the metrics and the hooks."""
        event = self._record(call)
        if self._on_event:
            await emit(self._on_event, event)

    def _record(self, call: Call) -> ProxyEvent:
        self._open[call.record.kind].dec()
        event = call.record.end()
        call.span.end(event)
        log_event(event, json_format=self._json)
        self.metrics.observe(event)
        return event
