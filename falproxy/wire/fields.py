"""Which header names and values may be written on the wire (RFC 9110 sections 5.1, 5.5).

A name is a token; a value holds no control character but horizontal tab (so no CR, LF or
NUL that would split a message). Applied to every head falproxy writes, in either
direction, whatever its source (the client, a hook, the upstream).
"""

from __future__ import annotations

import re
from typing import Final

# RFC 9110 section 5.6.2: tchar; a name outside it (or empty) could change the framing.
_NOT_TOKEN: Final = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9A-Za-z]")
# RFC 9110 section 5.5: field-vchar, obs-text, SP and HTAB; everything else is refused.
_BAD_VALUE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def valid_name(name: bytes) -> bool:
    """Whether ``name`` is a token (a field name or a method)."""
    return bool(name) and _NOT_TOKEN.search(name) is None


def valid_value(value: bytes) -> bool:
    """Whether ``value`` can be written without splitting the message."""
    return _BAD_VALUE.search(value) is None
