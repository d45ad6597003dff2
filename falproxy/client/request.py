"""Where a call goes and the request head it sends, as bytes, exactly as given.

The URL was validated byte by byte before it gets here, so its path and query are sent as
they are: no re-quoting, no normalising. The only header the client adds is ``Host`` (when
the caller gave none) and the body's framing (when the caller gave none).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from falproxy.wire.fields import valid_name, valid_value

DEFAULT_PORTS = {"http": 80, "https": 443}
# aiohttp sent "Content-Length: 0" for a bodiless call of any other method; kept as it was.
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT"})

Origin = tuple[str, str, int]


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed absolute URL: where to connect and what to put on the request line."""

    scheme: str
    host: str  # without brackets for IPv6
    port: int
    host_header: bytes  # the authority, default port left out
    path: bytes  # path and query, as given ("/" when empty)

    @property
    def origin(self) -> Origin:
        return (self.scheme, self.host, self.port)


def parse_target(url: str) -> Target:
    """Split an absolute http(s) URL; ``ValueError`` on anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("not an absolute http(s) URL")
    end = len(rest)
    for mark in "/?#":
        at = rest.find(mark)
        if at != -1 and at < end:
            end = at
    path = rest[end:].partition("#")[0]
    if not path.startswith("/"):
        path = "/" + path
    scheme, host, port, shown = _origin(scheme, rest[:end])
    return Target(scheme, host, port, shown, path.encode("latin-1"))


@functools.lru_cache(maxsize=256)
def _origin(scheme: str, authority: str) -> tuple[str, str, int, bytes]:
    """Scheme, host, port and Host header of an origin: a handful per proxy, so cached."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError("not an absolute http(s) URL")
    if not authority or "@" in authority:
        raise ValueError("the URL needs a host and no user information")
    if authority.startswith("["):
        host, bracket, port_text = authority[1:].partition("]")
        if not bracket or (port_text and not port_text.startswith(":")):
            raise ValueError("malformed IPv6 authority")
        port_text = port_text[1:]
        shown = f"[{host}]"
    else:
        host, _, port_text = authority.partition(":")
        shown = host
    if port_text and not (port_text.isascii() and port_text.isdigit()):
        raise ValueError("the port must be a number")
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if not host or not 0 < port < 65536:
        raise ValueError("the URL needs a host and a valid port")
    if port != DEFAULT_PORTS[scheme]:
        shown = f"{shown}:{port}"
    return scheme, host, port, shown.encode("ascii")


def encode_head(
    method: str,
    target: Target,
    headers: list[tuple[bytes, bytes]],
    *,
    length: int | None,
    chunked: bool,
) -> bytes:
    """The request line and headers: ``headers`` in order, plus Host and framing if absent.

    ``length`` is the body's size when it is bytes (``None`` for no body or a stream);
    ``chunked`` asks for ``Transfer-Encoding: chunked`` (ignored when the caller framed it).
    """
    raw_method = method.encode("ascii")
    if not valid_name(raw_method):  # RFC 9110 section 9.1: a method is a token
        raise ValueError("the method is not an HTTP token")
    has_host = has_encoding = False
    given_length: bytes | None = None
    lines = [raw_method, b" ", target.path, b" HTTP/1.1\r\n"]
    for name, value in headers:
        if not valid_name(name) or not valid_value(value):
            raise ValueError("a header cannot be written (RFC 9110 section 5)")
        lowered = name.lower()
        if lowered == b"host":
            has_host = True
        elif lowered == b"content-length":
            if given_length is not None and given_length != value:
                raise ValueError("two different Content-Length headers")
            given_length = value
        elif lowered == b"transfer-encoding":
            has_encoding = True
        lines += (name, b": ", value, b"\r\n")
    if not has_host:
        lines[4:4] = (b"Host: ", target.host_header, b"\r\n")
    if given_length is not None and length is not None and given_length.strip() != b"%d" % length:
        raise ValueError("Content-Length does not match the body")  # never send a mismatch
    if has_encoding and (given_length is not None or not chunked):
        raise ValueError("Transfer-Encoding only for a streamed body without a length")
    if given_length is None and not has_encoding:
        if length is not None:
            lines += (b"Content-Length: ", str(length).encode(), b"\r\n")
        elif chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif method not in BODILESS_METHODS:
            lines.append(b"Content-Length: 0\r\n")
    lines.append(b"\r\n")
    return b"".join(lines)


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The caller's Content-Length, if it gave one: a streamed body must then match it."""
    for name, value in headers:
        if name.lower() == b"content-length":
            text = value.strip()
            if not (text.isascii() and text.isdigit()):
                raise ValueError("Content-Length is not a number")
            return int(text)
    return None
