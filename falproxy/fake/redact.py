"""Masking of credentials before anything is echoed or recorded.

The echo scenario and the stats endpoint exist so tests can see what a proxy forwarded;
they must show *that* a credential was sent and its scheme, never its value.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import Headers

MASK = "***"
SECRET_QUERY_PARAMS = frozenset({"fal_jwt_token"})  # bearer tokens travel in the query


def mask_authorization(value: str) -> str:
    """Keep the scheme (``Key``, ``Bearer``) so tests can tell them apart; drop the rest."""
    scheme, _, _ = value.strip().partition(" ")
    if scheme.isalpha() and len(scheme) <= 20:
        return f"{scheme} {MASK}"
    return MASK


def safe_headers(headers: Headers) -> dict[str, str]:
    """Lower-cased request headers with ``authorization`` masked; repeats joined by ``, ``."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        shown = mask_authorization(value) if name == "authorization" else value
        result[name] = f"{result[name]}, {shown}" if name in result else shown
    return result


def safe_query(query_string: str) -> str:
    """The query string with token values replaced by the mask."""
    pairs = parse_qsl(query_string, keep_blank_values=True)
    if not any(name in SECRET_QUERY_PARAMS for name, _ in pairs):
        return query_string
    masked = [(n, MASK if n in SECRET_QUERY_PARAMS else v) for n, v in pairs]
    return urlencode(masked, safe=MASK)
