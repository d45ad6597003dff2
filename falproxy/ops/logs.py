"""Log lines: the access log (one line per call) and the format of every line we print.

``FALPROXY_LOG_FORMAT=json`` makes every line falproxy and uvicorn print one JSON object
(``ts``, ``level``, ``logger``, ``message``, and for an access line the event's fields),
so a log shipper never has to parse a text prefix; ``text`` (the default) stays readable
at a terminal. The older ``FALPROXY_ACCESS_LOG_FORMAT=json`` means the same. A proxy
mounted in an application that set up no logging still prints its access lines, through
:class:`DefaultAccessHandler`, which steps aside for any handler the application installs.

Nothing here ever sees a key: an event holds no URL query, header value or key by
construction (:mod:`falproxy.core.events`), and the start-up line prints settings that
are not secrets.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict
from typing import Any

from falproxy.config.settings import ProxyConfig
from falproxy.core.events import ProxyEvent
from falproxy.ops.metrics import MAX_APP_LABEL_LENGTH

PACKAGE_LOGGER = logging.getLogger("falproxy")
access_logger = logging.getLogger("falproxy.access")

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The LogRecord attributes this module attaches: the call's event, and extra fields.
EVENT_ATTRIBUTE = "falproxy_event"
FIELDS_ATTRIBUTE = "falproxy_fields"
# Loggers falproxy configures for `falproxy serve`; anything else reaches the root handler.
SERVED_LOGGERS = ("falproxy", "uvicorn", "uvicorn.error", "uvicorn.access")


def json_logs(config: ProxyConfig) -> bool:
    """Whether lines are JSON: ``log_format``, or the older ``access_log_format``."""
    return config.log_format == "json" or config.access_log_format == "json"


def event_json(event: ProxyEvent) -> str:
    """The event as one JSON object; it holds no secret by construction (see above)."""
    return json.dumps(event_fields(event), separators=(",", ":"), sort_keys=True)


def event_fields(event: ProxyEvent) -> dict[str, Any]:
    """The event's fields that are set; the app id cut like the metrics label."""
    fields = {key: value for key, value in asdict(event).items() if value is not None}
    if event.app_id:
        fields["app_id"] = event.app_id[:MAX_APP_LABEL_LENGTH]
    return fields


def event_summary(event: ProxyEvent) -> str:
    """The text access line: ``kind METHOD app=... status=... outcome=... up= down= ms=
    client=``, ``dropped_headers=N`` when upstream headers carrying the key were withheld,
    ``backup_domain=yes`` when fal.run was unreachable and fal's backup domain answered, and
    ``units=`` / ``usd=`` when fal billed units and the call was charged to a budget."""
    dropped = f" dropped_headers={event.dropped_headers}" if event.dropped_headers else ""
    extra = " backup_domain=yes" if event.backup_domain else ""
    if event.billable_units is not None:
        extra += f" units={event.billable_units:g}"
    if event.cost_usd is not None:
        extra += f" usd={event.cost_usd:g}"
    return (
        f"{event.kind} {event.method} app={_app(event)} status={event.status or '-'} "
        f"outcome={event.outcome} up={event.bytes_up} down={event.bytes_down} "
        f"ms={event.duration_seconds * 1000:.1f} client={event.client or '-'}{dropped}{extra}"
    )


def _app(event: ProxyEvent) -> str:
    """The app a line names: refused ones too (a 403 says which), cut like the metrics label."""
    return event.app_id[:MAX_APP_LABEL_LENGTH] if event.app_id else "-"


def log_event(event: ProxyEvent, *, json_format: bool = False) -> None:
    """One access-log line per call.

    The record carries the event, so :class:`JsonFormatter` writes its fields; handlers an
    embedding application installs see a text line, or with ``json_format`` the event as
    a JSON message, as before.
    """
    if not access_logger.isEnabledFor(logging.INFO):
        return
    message = event_json(event) if json_format else event_summary(event)
    access_logger.info("%s", message, extra={EVENT_ATTRIBUTE: event})


class DefaultAccessHandler(logging.Handler):
    """Access lines on stderr for a proxy whose host application configured no logging.

    Mounted in FastAPI, Django or Flask, nothing routes ``falproxy.access`` anywhere, and
    Python drops INFO lines by default. This handler prints each line in ``falproxy
    serve``'s format, but steps aside for a record another handler will print: one the
    application installed (on ``falproxy.access``, ``falproxy`` or the root logger) or
    ``falproxy serve``'s own, so a line is never printed twice.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if _handled_elsewhere(record, self):
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed stderr must not fail the call
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, ours: logging.Handler) -> bool:
    """Whether a handler other than ``ours`` will take ``record`` as it propagates."""
    logger: logging.Logger | None = access_logger
    while logger is not None:
        if any(h is not ours and record.levelno >= h.level for h in logger.handlers):
            return True
        logger = logger.parent if logger.propagate else None
    return False


def install_default_access_log(json_format: bool) -> None:
    """Make access lines visible where the application set no logging up (see above).

    Idempotent; the last proxy built chooses the format. The level is raised to INFO only
    when neither ``falproxy.access`` nor ``falproxy`` has a level of its own, so
    ``logging.getLogger("falproxy.access").setLevel(logging.WARNING)`` silences it.
    """
    handler = next((h for h in access_logger.handlers if isinstance(h, DefaultAccessHandler)), None)
    if handler is None:
        handler = DefaultAccessHandler()
        access_logger.addHandler(handler)
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(TEXT_FORMAT))
    if access_logger.level == logging.NOTSET and PACKAGE_LOGGER.level == logging.NOTSET:
        access_logger.setLevel(logging.INFO)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, EVENT_ATTRIBUTE, None)
        if isinstance(event, ProxyEvent):
            line["message"] = event_summary(event)
            line.update(event_fields(event))
        fields = getattr(record, FIELDS_ATTRIBUTE, None)
        if isinstance(fields, dict):
            line.update({k: v for k, v in fields.items() if k not in line})
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def _timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def log_config(level: str, log_format: str = "text") -> dict[str, Any]:
    """``logging.config.dictConfig`` input for ``falproxy serve`` and its uvicorn workers.

    uvicorn applies it in the parent and again in every worker it spawns, so the
    formatter is named by import path. One handler on stderr; the root logger shares it,
    so lines from libraries (uvicorn, asyncio) come out in the same format.
    """
    if log_format == "json":
        formatter: dict[str, Any] = {"()": f"{__name__}.JsonFormatter"}
    else:
        formatter = {"format": TEXT_FORMAT}
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "falproxy",
        "stream": "ext://sys.stderr",
    }
    loggers = {
        name: {"handlers": ["stderr"], "level": level.upper(), "propagate": False}
        for name in SERVED_LOGGERS
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"falproxy": formatter},
        "handlers": {"stderr": handler},
        "loggers": loggers,
        "root": {"handlers": ["stderr"], "level": "WARNING"},
    }
