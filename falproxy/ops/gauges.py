"""In-process gauges of resources that must return to zero: open upstream responses.

A proxy that leaks one upstream connection per client disconnect dies slowly; the leak
tests and the soak script read these gauges to prove every opened upstream response is
closed again, whatever ended the call.
"""

from __future__ import annotations

import threading


class Gauge:
    """A thread-safe up/down counter (proxies may run in several threads' event loops)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._value = 0
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._value

    def inc(self) -> None:
        with self._lock:
            self._value += 1

    def dec(self) -> None:
        with self._lock:
            self._value -= 1


# Upstream HTTP responses opened by the relay and not yet closed, in this process.
OPEN_UPSTREAM_RESPONSES = Gauge("falproxy_open_upstream_responses")
