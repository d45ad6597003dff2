"""Endpoint ids as fal spells them: ``[namespace/]owner/alias[/path...]``.

Run, submit and stream use the full id; status, result and cancel use only the app part
(``[namespace/]owner/alias``). Parsing lives here so every route agrees on what an alias is,
which matters for JWT tokens: they list aliases only.
"""

from __future__ import annotations

from dataclasses import dataclass

NAMESPACES = frozenset({"workflows", "comfy"})  # leading segments fal recognises


@dataclass(frozen=True)
class EndpointId:
    """A parsed endpoint id; ``path`` is empty for a bare app id."""

    namespace: str | None
    owner: str
    alias: str
    path: str

    @property
    def app_id(self) -> str:
        """The ``[namespace/]owner/alias`` part used by queue status/result/cancel URLs."""
        head = f"{self.namespace}/" if self.namespace else ""
        return f"{head}{self.owner}/{self.alias}"

    @property
    def full(self) -> str:
        """The whole id, path included."""
        return f"{self.app_id}/{self.path}" if self.path else self.app_id


def parse_endpoint(raw: str) -> EndpointId | None:
    """Parse an id from a URL path; ``None`` when it has fewer than two segments or empty ones."""
    parts = raw.strip("/").split("/")
    if any(not part for part in parts):
        return None
    namespace = parts[0] if parts[0] in NAMESPACES else None
    rest = parts[1:] if namespace else parts
    if len(rest) < 2:
        return None
    return EndpointId(namespace, rest[0], rest[1], "/".join(rest[2:]))
