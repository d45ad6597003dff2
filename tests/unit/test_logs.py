"""The JSON log formatter: one parseable line per record, tracebacks included."""

from __future__ import annotations

import json
import logging
import sys

from falproxy.core.events import ProxyEvent
from falproxy.ops.logs import EVENT_ATTRIBUTE, JsonFormatter, event_summary


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("falproxy", logging.ERROR, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_traceback_stays_inside_one_line() -> None:
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        failing = record("it broke", exc_info=sys.exc_info())
    line = JsonFormatter().format(failing)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "it broke" and "ValueError: line one" in parsed["exc_info"]
    assert parsed["level"] == "ERROR" and parsed["logger"] == "falproxy"


def test_an_access_line_carries_the_event_fields() -> None:
    event = ProxyEvent("http", "POST", "fal-ai/flux/dev", 200, "ok", bytes_up=3, admitted=True)
    parsed = json.loads(JsonFormatter().format(record("ignored", **{EVENT_ATTRIBUTE: event})))
    assert parsed["message"] == event_summary(event)
    assert parsed["app_id"] == "fal-ai/flux/dev" and parsed["status"] == 200
    assert parsed["bytes_up"] == 3 and parsed["admitted"] is True
    assert "request_id" not in parsed, "absent values are left out"
