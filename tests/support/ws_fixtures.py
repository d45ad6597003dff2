"""Fixtures shared by the WebSocket tests: a fake with a clean realtime history, and the
events the socket pipeline records."""

from __future__ import annotations

from typing import Any

import pytest

import falproxy.ops.calls
from falproxy.core.events import ProxyEvent
from tests.support.ws_helpers import reset_realtime


@pytest.fixture
def fake_rt(fake_url: str) -> str:
    """The fake's URL, with its realtime history cleared."""
    reset_realtime(fake_url)
    return fake_url


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[ProxyEvent]:
    """Every ProxyEvent the socket pipeline logs (the access log is still written)."""
    seen: list[ProxyEvent] = []
    original = falproxy.ops.calls.log_event

    def record(event: ProxyEvent, **options: Any) -> None:
        seen.append(event)
        original(event, **options)

    monkeypatch.setattr(falproxy.ops.calls, "log_event", record)
    return seen
