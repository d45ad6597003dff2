"""Parse and validate the fal URL a browser asks the proxy to call.

The proxy calls whatever this module accepts *with the fal key attached*, so a lenient parser is
an SSRF. General-purpose parsers (``urllib.parse``, httpx, the WHATWG parser in browsers and Node)
each repair malformed input in their own way: they turn backslashes into slashes, decode
percent-escapes in hosts, accept userinfo, read ``127.1`` or ``0x7f.1`` as IPv4 addresses. Any
disagreement between the parser that validates and the client that connects is a way around the
allow-list. So this module accepts one narrow spelling of an absolute URL, checks every part
against an allow-list, and hands on a :class:`Target` rebuilt from the validated parts: nothing
downstream ever sees the raw header again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from falproxy.core.errors import InvalidTarget

__all__ = [
    "ALLOWED_HOSTS",
    "ALLOWED_SCHEMES",
    "BACKUP_HOSTS",
    "MAPPABLE_HOSTS",
    "MAX_TARGET_LENGTH",
    "UPSTREAM_ONLY_HOSTS",
    "Target",
    "is_valid_segment",
    "parse_target",
    "parse_target_header",
]

# The fal hosts a browser may reach through the proxy (docs/fal-protocol.md §2); nothing else, ever.
ALLOWED_HOSTS: Final = frozenset(
    {"fal.run", "queue.fal.run", "rest.fal.ai", "rest.alpha.fal.ai", "ws.fal.run"}
)
# Hosts the proxy calls for itself and never for a client (a target naming one is 412):
# fal's pricing API for spend budgets (docs/fal-protocol.md §17). ``--upstream`` maps them.
UPSTREAM_ONLY_HOSTS: Final = frozenset({"api.fal.ai"})
# fal's backup domains (what its own clients fall back to when the primary cannot be
# reached, docs/fal-protocol.md §15): only the proxy chooses them, never a client target.
BACKUP_HOSTS: Final = {"fal.run": "falrun.com", "queue.fal.run": "queue.falrun.com"}
# Hosts a `--upstream HOST=URL` mapping may name: the allowed ones, the backups, and the
# hosts the proxy calls for itself.
MAPPABLE_HOSTS: Final = ALLOWED_HOSTS | frozenset(BACKUP_HOSTS.values()) | UPSTREAM_ONLY_HOSTS
# TLS only: the key never travels in clear (the Node proxy takes http://, docs/fal-protocol.md §14).
ALLOWED_SCHEMES: Final = frozenset({"https", "wss"})
# The only port spelling accepted; RFC 3986 §3.2.3 lets the default port be omitted instead.
DEFAULT_PORT: Final = "443"
# Far longer than any URL a fal client builds; bounds the work done on hostile input.
MAX_TARGET_LENGTH: Final = 8192

# Visible ASCII only (RFC 3986 §2): no controls, spaces, DEL or non-ASCII (IDN look-alikes).
_VISIBLE_ASCII: Final = re.compile(r"[\x21-\x7e]*")
# RFC 3986 §3.1 scheme followed by "//": an authority is required (no relative references).
_SCHEME_PREFIX: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
# RFC 3986 §3.2: the authority ends at the first "/" or "?" ("#" is refused earlier).
_AUTHORITY_END: Final = re.compile(r"[/?]")
# RFC 1123 §2.1 host name, lower-case: dot-separated labels of letters, digits and inner hyphens.
_DNS_NAME: Final = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
# WHATWG URL "ends in a number": a last label of digits or 0x-hex makes a browser read IPv4.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
# RFC 3986 §3.3 pchar: unreserved / pct-encoded / sub-delims / ":" / "@".
_PCHAR: Final = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2})"
# RFC 3986 §3.3 segment-nz: one non-empty path segment.
_SEGMENT: Final = re.compile(f"{_PCHAR}+")
# RFC 3986 §3.4 query = *( pchar / "/" / "?" ).
_QUERY: Final = re.compile(f"(?:{_PCHAR}|[/?])*")
# RFC 3986 §3.3 lets ";" start segment parameters, which some servers strip and others keep:
# "…/dev;x" could reach the app "…/dev" while exact rules and limits see another id (issue 12).
_PATH_PARAMETER: Final = ";"
# A percent-escape, capturing its two hex digits.
_ESCAPE: Final = re.compile(r"%([0-9A-Fa-f]{2})")

# RFC 3986 §5.2.4 dot segments; "..;x" counts too, since some servers strip ";params".
_DOT_SEGMENTS: Final = frozenset({".", ".."})
# RFC 3986 §2.3 unreserved characters: an escaped one equals the plain one, so allow one spelling.
_UNRESERVED: Final = frozenset(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
)
# Bytes a path may not spell as %XX: separators, "%" itself (double decoding), controls,
# unreserved characters (which covers %2E, the dot of an encoded ".."), and ";" (%3B), refused
# plain too, so that no spelling of a parameter reaches a server that might decode and strip it.
_FORBIDDEN_PATH_ESCAPES: Final = frozenset(range(0x20)) | frozenset(b"\x7f/\\%;") | _UNRESERVED


@dataclass(frozen=True, slots=True)
class Target:
    """A validated fal URL; build it only with :func:`parse_target`."""

    scheme: str  # "https" or "wss"
    host: str  # lower-case, no trailing dot, one of the allowed hosts
    path: str  # starts with "/", validated
    query: str  # without the "?", validated, kept exactly (may be "")

    @property
    def url(self) -> str:
        """The URL to call, rebuilt from the validated parts (never the raw input)."""
        return f"{self.scheme}://{self.host}{self.path}" + (f"?{self.query}" if self.query else "")

    @property
    def glob_subject(self) -> str:
        """What URL globs match: host, path and query (the port is always 443, so omitted)."""
        return f"{self.host}{self.path}" + (f"?{self.query}" if self.query else "")


def parse_target(
    raw: str, *, scheme: str = "https", allowed_hosts: frozenset[str] = ALLOWED_HOSTS
) -> Target:
    """Parse ``raw`` as ``scheme://host[:443][/path][?query]`` on an allowed host.

    Returns a :class:`Target` whose :attr:`~Target.url` is rebuilt from validated parts; raises
    :class:`InvalidTarget` for anything else. Error details never quote the input.
    """
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError("parse_target: scheme must be 'https' or 'wss'")
    _check_characters(raw)
    prefix = _SCHEME_PREFIX.match(raw)
    if prefix is None:
        raise InvalidTarget("The target URL must be absolute (scheme://host/path)")
    if prefix.group(1).lower() != scheme:
        raise InvalidTarget(f"The target URL must use the {scheme} scheme")
    end = _AUTHORITY_END.search(raw, prefix.end())
    split = end.start() if end else len(raw)
    host = _parse_authority(raw[prefix.end() : split], allowed_hosts)
    path, query = _parse_path_and_query(raw[split:])
    return Target(scheme=scheme, host=host, path=path, query=query)


def parse_target_header(
    raw: bytes, *, scheme: str = "https", allowed_hosts: frozenset[str] = ALLOWED_HOSTS
) -> Target:
    """Like :func:`parse_target`, for a raw ASGI header value (bytes, any non-ASCII refused)."""
    if len(raw) > MAX_TARGET_LENGTH:
        raise InvalidTarget("The target URL is too long")
    if not raw.isascii():
        raise InvalidTarget("The target URL contains forbidden characters")
    return parse_target(raw.decode("ascii"), scheme=scheme, allowed_hosts=allowed_hosts)


def is_valid_segment(segment: str) -> bool:
    """Whether ``segment`` is a non-empty path segment this module would accept."""
    return _segment_problem(segment) is None


def _check_characters(raw: str) -> None:
    if len(raw) > MAX_TARGET_LENGTH:
        raise InvalidTarget("The target URL is too long")
    if _VISIBLE_ASCII.fullmatch(raw) is None:
        raise InvalidTarget("The target URL contains forbidden characters")
    if "\\" in raw:
        raise InvalidTarget("The target URL must not contain backslashes")
    if "#" in raw:
        raise InvalidTarget("The target URL must not contain a fragment")


def _parse_authority(authority: str, allowed_hosts: frozenset[str]) -> str:
    if "@" in authority:
        raise InvalidTarget("The target URL must not contain credentials")
    if "[" in authority or "]" in authority:
        raise InvalidTarget("The target host must be a name, not an IP address")
    if "%" in authority:
        raise InvalidTarget("The target host must not be percent-encoded")
    name, colon, port = authority.partition(":")
    if colon and port != DEFAULT_PORT:
        raise InvalidTarget("The target URL must use the default port")
    return _check_host(name.lower().removesuffix("."), allowed_hosts)


def _check_host(host: str, allowed_hosts: frozenset[str]) -> str:
    if not host:
        raise InvalidTarget("The target URL has no host")
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        raise InvalidTarget("The target host must be a name, not an IP address")
    if len(host) > 253 or _DNS_NAME.fullmatch(host) is None:
        raise InvalidTarget("The target host is not a valid DNS name")
    if any(label.startswith("xn--") for label in host.split(".")):
        raise InvalidTarget("The target host must not be an internationalised name")
    if host not in allowed_hosts:
        raise InvalidTarget("The target host is not allowed")
    return host


def _parse_path_and_query(rest: str) -> tuple[str, str]:
    if not rest:
        return "/", ""
    if rest.startswith("?"):
        raise InvalidTarget("The target URL must have a path before its query")
    path, _, query = rest.partition("?")
    segments = path[1:].split("/")
    for segment in segments[:-1] if segments[-1] == "" else segments:
        if (problem := _segment_problem(segment)) is not None:
            raise InvalidTarget(problem)
    if _QUERY.fullmatch(query) is None:
        raise InvalidTarget("The target URL query contains forbidden characters")
    return path, query


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "The target URL path must not contain empty segments"
    if _SEGMENT.fullmatch(segment) is None:
        return "The target URL path contains forbidden characters"
    if segment.split(";", 1)[0] in _DOT_SEGMENTS:
        return "The target URL path must not contain dot segments"
    if _PATH_PARAMETER in segment:
        return "The target URL path must not contain ';' (path parameters)"
    if any(int(digits, 16) in _FORBIDDEN_PATH_ESCAPES for digits in _ESCAPE.findall(segment)):
        return "The target URL path contains a forbidden percent-escape"
    return None
