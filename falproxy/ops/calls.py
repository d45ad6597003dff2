"""Where every finished call goes: the open-calls gauge, the access log, metrics and hooks.

Every front end opens a :class:`~falproxy.core.lifecycle.CallRecord` here when a call
arrives and closes it here when the call ends, so each call is counted, logged, measured
and given to the ``on_event`` hooks exactly once, whichever front end served it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from falproxy.config.settings import ProxyConfig
from falproxy.core.events import ProxyEvent, log_event
from falproxy.core.hooks import emit
from falproxy.core.lifecycle import CallRecord
from falproxy.ops.metrics import ProxyMetrics

RunOnLoop = Callable[[Coroutine[Any, Any, None]], None]


class CallLog:
    """Opens and closes the records of one proxy's calls."""

    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics) -> None:
        self.metrics = metrics
        self._json = "json" in (config.log_format, config.access_log_format)
        self._on_event = config.on_event

    def open(self, kind: str, method: str) -> CallRecord:
        """A new call: counted as open until :meth:`close`."""
        self.metrics.open.labels(kind).inc()
        return CallRecord(kind, method)

    async def close(self, record: CallRecord) -> None:
        """The call ended: one event to the log, the metrics and the ``on_event`` hooks."""
        event = self._record(record)
        if self._on_event:
            await emit(self._on_event, event)

    def close_sync(self, record: CallRecord, run: RunOnLoop) -> None:
        """:meth:`close` for a WSGI thread: the hooks run on ``run``'s event loop."""
        event = self._record(record)
        if self._on_event:
            run(emit(self._on_event, event))

    def _record(self, record: CallRecord) -> ProxyEvent:
        self.metrics.open.labels(record.kind).dec()
        event = record.end()
        log_event(event, json_format=self._json)
        self.metrics.observe(event)
        return event
