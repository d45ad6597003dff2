"""Which headers cross the proxy, in each direction.

Requests: an allow-list. Only headers fal uses reach it, plus the server's key; the
browser's ``Authorization`` and cookies never do (they are the app's own secrets, and
forwarding ``Authorization`` would let any visitor spend their own key through us, which
is the Node proxy's default). Responses: everything fal sent except hop-by-hop headers,
because clients read ``x-fal-*``, ``content-type`` and friends.

Headers are raw ASGI ``(name, value)`` byte pairs with lower-case names. A forwarded
value must be printable ASCII (:func:`field_value`), on every path (ASGI, WSGI and the
WebSocket handshake), else the call is refused with 400: the HTTP clients between us and
fal disagree on bytes above 0x7F (aiohttp re-encoded them as UTF-8, httpx kept them,
websockets failed the handshake), so no byte-for-byte promise could hold everywhere.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from falproxy._version import __version__
from falproxy.core.errors import InvalidHeaderValue

Headers = list[tuple[bytes, bytes]]

# Request headers forwarded to fal besides x-fal-* (docs/fal-protocol.md §5).
FORWARDED_REQUEST_HEADERS = frozenset(
    {b"content-type", b"accept", b"accept-encoding", b"user-agent", b"traceparent"}
)
# x-fal-* request headers carry options fal reads (priority, hints, timeouts, lifecycle).
FAL_HEADER_PREFIX = b"x-fal-"
# The target travels to the proxy only; the Node proxy leaks it upstream.
TARGET_HEADER = b"x-fal-target-url"
# RFC 9110 section 7.6.1 and RFC 9112: connection-specific, never forwarded by a proxy.
HOP_BY_HOP_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# Set by whichever server answers the client; the upstream's copies would be duplicates.
SERVER_OWN_HEADERS = frozenset({b"date", b"server"})
# Upstream cookies are for fal's domain, never for the app's; they are not relayed.
DROPPED_RESPONSE_HEADERS = HOP_BY_HOP_HEADERS | SERVER_OWN_HEADERS | {b"set-cookie"}
# fal answers CORS with `*`; whether a browser origin may read our responses is the
# proxy's decision (cors.py), never fal's.
UPSTREAM_CORS_PREFIX = b"access-control-"
# RFC 9110 5.5: a field value is VCHAR, SP and HTAB; obs-text (0x80-0xFF) has no agreed
# charset and is refused, as are controls (CR, LF and NUL are already refused by servers).
FIELD_VALUE_BYTES = bytes(range(0x20, 0x7F)) + b"\t"
# Identifies the proxy to fal, like @fal-ai/server-proxy's header does.
CLIENT_PROXY_HEADER = (b"x-fal-client-proxy", f"falproxy/{__version__}".encode())
# The scheme of the upstream Authorization value (fal-protocol.md section 4): "Key <id>:<secret>".
KEY_SCHEME = b"key "
# A key's secret half shorter than this is too common a byte string to scan for on its own;
# the whole key is scanned for instead (real fal secrets are far longer).
MIN_SCANNED_SECRET = 8
# Event streams must not be buffered by nginx or caches in front of us.
EVENT_STREAM_HEADERS: Headers = [(b"x-accel-buffering", b"no"), (b"cache-control", b"no-cache")]


def field_value(value: bytes) -> bytes:
    """``value`` unchanged if it may be forwarded; else :class:`InvalidHeaderValue` (400).

    The detail names no header and quotes no value (it may be anything the client sent).
    """
    if value.translate(None, FIELD_VALUE_BYTES):  # anything left is outside the set
        raise InvalidHeaderValue()
    return value


def upstream_request_headers(
    incoming: Iterable[tuple[bytes, bytes]],
    authorization: bytes,
    content_length: int | None,
) -> Headers:
    """The headers sent to fal: the allow-listed ones, our key and our identity.

    ``content_length`` is the validated length of the body, or ``None`` to send it
    chunked; the client's own ``Content-Length`` is never copied. A forwarded value that
    is not printable ASCII refuses the call (:func:`field_value`).
    """
    out: Headers = []
    for name, value in incoming:
        if name in FORWARDED_REQUEST_HEADERS or (
            name.startswith(FAL_HEADER_PREFIX) and name != TARGET_HEADER
        ):
            out.append((name, field_value(value)))
    out.append((b"authorization", authorization))
    out.append(CLIENT_PROXY_HEADER)
    if content_length is not None:
        out.append((b"content-length", str(content_length).encode()))
    return out


def client_response_headers(
    upstream: Iterable[tuple[bytes, bytes]], authorization: bytes
) -> tuple[Headers, bool, int]:
    """The upstream's headers minus dropped ones, whether it is an event stream, and how
    many headers were dropped because they carried the key.

    Dropped: hop-by-hop headers (and those named in ``Connection``), ``Date`` and ``Server``
    (the answering server sets its own), ``Set-Cookie``, fal's ``Access-Control-*``, and any
    header whose value contains the key sent upstream (``authorization``, the ``Key id:secret``
    value): an upstream that echoes the request's ``Authorization`` must not hand it out.
    """
    pairs = [(name.lower(), value) for name, value in upstream]
    dropped = set(DROPPED_RESPONSE_HEADERS)
    for name, value in pairs:
        if name == b"connection":
            dropped.update(token.strip().lower() for token in value.split(b","))
    # One scan of all values for the key; only a response that holds it is filtered by it.
    block = b"\n".join(value for _, value in pairs)
    needles = [needle for needle in key_needles(authorization) if needle in block]
    out: Headers = []
    leaked = 0
    for name, value in pairs:
        if name in dropped or name.startswith(UPSTREAM_CORS_PREFIX):
            continue
        if needles and _holds_any(value, needles):
            leaked += 1
            continue
        out.append((name, value))
    is_event_stream = any(
        name == b"content-type" and value.lower().startswith(b"text/event-stream")
        for name, value in out
    )
    if is_event_stream:
        out = [(n, v) for n, v in out if n not in (b"cache-control", b"x-accel-buffering")]
        out.extend(EVENT_STREAM_HEADERS)
    return out, is_event_stream, leaked


def _holds_any(value: bytes, needles: list[bytes]) -> bool:
    return any(needle in value for needle in needles)


@functools.lru_cache(maxsize=256)  # one server key, or a bounded set of per-user keys
def key_needles(authorization: bytes) -> tuple[bytes, ...]:
    """What betrays the key in a response: its secret half, or the whole key when short.

    ``authorization`` is the upstream ``Authorization`` value, ``Key <id>:<secret>``; any
    value containing the secret contains the whole key too, so the secret alone is enough.
    """
    key = authorization[len(KEY_SCHEME) :] if authorization[:4].lower() == KEY_SCHEME else b""
    key = key.strip() or authorization.strip()
    secret = key.partition(b":")[2]
    if len(secret) >= MIN_SCANNED_SECRET:
        return (secret,)
    return (key,) if key else ()
