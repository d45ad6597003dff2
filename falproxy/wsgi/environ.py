"""What a WSGI environ (or Django's ``request.META``) says about a request, as core values."""

from __future__ import annotations

import socket
from collections.abc import Mapping

from falproxy.core.headers import Headers
from falproxy.core.types import Scope

# WSGI environ keys that are request headers without the HTTP_ prefix (PEP 3333).
_UNPREFIXED_HEADERS = {"CONTENT_TYPE": b"content-type", "CONTENT_LENGTH": b"content-length"}
# Where WSGI servers expose the client's socket: gunicorn, and Werkzeug's server (flask run).
SOCKET_KEYS = ("gunicorn.socket", "werkzeug.socket")


def environ_headers(environ: Mapping[str, object]) -> Headers:
    """Raw lower-case header pairs from a WSGI environ (or Django's ``request.META``)."""
    headers: Headers = []
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:].lower().replace("_", "-").encode("latin-1")
        elif key in _UNPREFIXED_HEADERS:
            name = _UNPREFIXED_HEADERS[key]
            if not value:  # WSGI servers may set CONTENT_LENGTH="" for no body
                continue
        else:
            continue
        headers.append((name, value.encode("latin-1")))
    return headers


def environ_client(environ: Mapping[str, object]) -> tuple[str, int] | None:
    """The peer address of a WSGI request (``REMOTE_ADDR``, ``REMOTE_PORT``)."""
    address = environ.get("REMOTE_ADDR")
    if not isinstance(address, str) or not address:
        return None
    port = environ.get("REMOTE_PORT")
    return address, int(port) if isinstance(port, str) and port.isdigit() else 0


def environ_socket(environ: Mapping[str, object]) -> socket.socket | None:
    """The client's socket, when the server exposes it (needed for the body timeouts)."""
    for key in SOCKET_KEYS:
        sock = environ.get(key)
        if isinstance(sock, socket.socket):
            return sock
    return None


def environ_scope(method: str, headers: Headers, client: tuple[str, int] | None) -> Scope:
    """The ASGI-shaped view of a WSGI request that hooks and the limiter read."""
    return {"type": "http", "method": method, "headers": headers, "client": client}
