"""Display forms of values that may carry secrets: URLs with credentials in them.

``redis://:password@host`` and ``http://user:password@host`` are valid settings, so
anything that prints a URL (``falproxy check``, start-up lines, error messages) prints it
through :func:`mask_url` first.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "****"


def mask_url(url: str) -> str:
    """``url`` with its password (or a user name given alone, often a token) as ``****``."""
    try:
        parts = urlsplit(url)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        # Not parseable (bad port, bad IPv6): show nothing of what precedes the host.
        _, at, rest = url.rpartition("@")
        return f"{MASK}@{rest}" if at else url
    if parts.username is None and parts.password is None:
        # No authority parsed ("user:pw@host" without a scheme): mask up to the last "@".
        _, at, rest = url.rpartition("@")
        return f"{MASK}@{rest}" if at else url
    user = MASK if parts.password is None else f"{parts.username or ''}:{MASK}"
    host = f"[{hostname}]" if hostname and ":" in hostname else hostname or ""
    netloc = f"{user}@{host}" + (f":{port}" if port else "")
    return urlunsplit(parts._replace(netloc=netloc))
