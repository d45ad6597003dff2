"""Serving the fake with uvicorn, for ``falproxy fake --port P``.

Loopback by default: the fake accepts any key and is meant for tests and local development.
Access logs would print ``fal_jwt_token`` query values, so they are redacted.
"""

from __future__ import annotations

import logging

import uvicorn

from .app import create_fake_app
from .redact import safe_query

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787


class RedactTokens(logging.Filter):
    """Masks token query values in uvicorn access-log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redacted(arg) for arg in args)
        return True


def _redacted(arg: object) -> object:
    """A ``path?query`` log argument with token values masked; anything else unchanged."""
    if not isinstance(arg, str) or "?" not in arg:
        return arg
    path, sep, query = arg.partition("?")
    return path + sep + safe_query(query)


def run_fake(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    speed: float = 1.0,
    expected_key: str | None = None,
    public_url: str | None = None,
) -> None:
    """Serve a fake fal upstream until interrupted."""
    app = create_fake_app(speed=speed, expected_key=expected_key, public_url=public_url)
    config = uvicorn.Config(app, host=host, port=port, lifespan="off")  # ws: realtime
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    logging.getLogger("uvicorn.error").addFilter(RedactTokens())  # WebSocket handshake lines
    uvicorn.Server(config).run()
