"""The fal credential: loaded once, validated at start-up, never shown.

The key is the one secret falproxy holds. It lives in a :class:`FalCredential` whose
``repr`` and ``str`` are masked, and it leaves the process only inside the
``Authorization`` header of an upstream request. Validation errors name the variable,
never its value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from falproxy.core.errors import ConfigError

# A fal key is "key_id:key_secret"; both halves are printable ASCII without spaces.
_PRINTABLE = frozenset(chr(c) for c in range(0x21, 0x7F))

# The placeholder keys the project ships, and where the user puts the real key instead: a copied
# example left unedited stops start-up instead of sending the placeholder to fal (401 on every
# call). tests/unit/test_placeholder_keys.py finds every FAL_KEY value in README.md, docs/,
# deploy/ and examples/ and fails when one is missing here.
PLACEHOLDER_KEYS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "your-key-id:your-key-secret": (
            "edit deploy/falproxy.env (copied from deploy/falproxy.env.example), "
            "or export FAL_KEY, with your key"
        ),
        "REPLACE-WITH-KEY-ID:REPLACE-WITH-KEY-SECRET": (
            "create the falproxy-key Secret with your key instead of applying "
            "deploy/kubernetes-secret.example.yaml unedited"
        ),
    }
)
# Either half of a placeholder, as FAL_KEY_ID or FAL_KEY_SECRET, names the same file.
_PLACEHOLDER_PARTS: Final = MappingProxyType(
    {part: fix for key, fix in PLACEHOLDER_KEYS.items() for part in key.split(":")}
)

# The credential `falproxy serve --fake` sends to the embedded fake instead of a real key.
FAKE_CREDENTIAL_VALUE = "fake-key-id:fake-key-secret"


class FalCredential:
    """A fal key kept out of every repr, log line and error message."""

    __slots__ = ("_header", "_value")

    def __init__(self, value: str, *, source: str = "FAL_KEY") -> None:
        _validate(value, source)
        self._value = value
        self._header = f"Key {value}".encode("ascii")

    @property
    def authorization(self) -> bytes:
        """The ``Authorization`` header value for upstream requests (``Key <key>``)."""
        return self._header

    def reveal(self) -> str:
        """The raw key; only for building upstream requests, never for display."""
        return self._value

    def masked(self) -> str:
        """A display form that proves which key is loaded without exposing it."""
        key_id = self._value.split(":", 1)[0]
        shown = key_id[:4] if len(key_id) >= 12 else ""
        return f"{shown}****" if shown else "****"

    def __repr__(self) -> str:
        return f"FalCredential({self.masked()!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FalCredential) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def key_shape_problem(credential: object) -> str | None:
    """Why a key cannot be a fal key, or ``None``; a warning, since fal decides in the end.

    fal keys are ``KEY_ID:KEY_SECRET``; a value without the colon (the id alone, the
    secret alone, another service's token) is refused by fal with 401 on every call.
    """
    if not isinstance(credential, FalCredential):
        return None
    key_id, colon, secret = credential.reveal().partition(":")
    if not colon or not key_id or not secret:
        return (
            "does not look like a fal key: expected KEY_ID:KEY_SECRET (one ':' between "
            "two non-empty parts); fal will refuse every call with 401"
        )
    return None


def _validate(value: str, source: str) -> None:
    if not value:
        raise ConfigError(f"{source} is empty")
    if value != value.strip():
        raise ConfigError(
            f"{source} has leading or trailing whitespace (often a newline from `echo`); remove it"
        )
    if not set(value) <= _PRINTABLE:
        raise ConfigError(f"{source} contains characters that cannot appear in a fal key")
    fix = next(filter(None, map(_PLACEHOLDER_PARTS.get, value.split(":"))), None)
    if fix is not None:
        raise ConfigError(f"{source} is the example's placeholder, not a key: {fix}")


def credential_from_env(env: Mapping[str, str]) -> FalCredential | None:
    """``FAL_KEY``, else ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``, else ``None``.

    Setting only one half of the id/secret pair, or both forms at once with different
    values, is a configuration error rather than a silent choice.
    """
    key = env.get("FAL_KEY")
    key_id, key_secret = env.get("FAL_KEY_ID"), env.get("FAL_KEY_SECRET")
    if (key_id is None) != (key_secret is None):
        raise ConfigError("FAL_KEY_ID and FAL_KEY_SECRET must be set together")
    pair = None
    if key_id is not None and key_secret is not None:
        _validate(key_id, "FAL_KEY_ID")
        _validate(key_secret, "FAL_KEY_SECRET")
        pair = FalCredential(f"{key_id}:{key_secret}", source="FAL_KEY_ID:FAL_KEY_SECRET")
    if key is None:
        return pair
    credential = FalCredential(key, source="FAL_KEY")
    if pair is not None and pair != credential:
        raise ConfigError("FAL_KEY and FAL_KEY_ID/FAL_KEY_SECRET are both set and differ")
    return credential
