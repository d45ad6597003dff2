"""Reading model inputs the way fal does, and fal's validation error shape.

Inputs arrive as a JSON object body, or as the query string for ``GET`` runs. Problems become
:class:`InputError`, a 422 ``{"detail": [{"loc", "msg", "type"}]}`` (docs/fal-protocol.md §12),
which the JS client turns into a ``ValidationError``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from .errors import FakeError, typed_error

Input = dict[str, Any]

RESERVED_QUERY_PARAMS = frozenset({"fal_jwt_token", "fal_webhook"})  # never model input
TIMEOUT_HEADER = "x-fal-request-timeout"  # seconds, must be > 1 (docs/fal-protocol.md §5)


class InputError(Exception):
    """One or more input problems, each ``(loc, msg, type)`` like pydantic's errors."""

    def __init__(self, *problems: tuple[tuple[str, ...], str, str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def details(self) -> list[dict[str, object]]:
        """The ``detail`` list fal puts in a 422 body."""
        return [{"loc": list(loc), "msg": msg, "type": kind} for loc, msg, kind in self.problems]

    def as_fake_error(self) -> FakeError:
        """The 422 answer for these problems."""
        return FakeError(422, {"detail": self.details()})


def parse_body(raw: bytes) -> Input:
    """Parse a JSON object body; an empty body counts as ``{}``."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError((("body",), "Invalid JSON body", "json_invalid")) from None
    if not isinstance(value, dict):
        raise InputError((("body",), "Input should be a JSON object", "dict_type"))
    return value


def query_input(params: Mapping[str, str]) -> Input:
    """Inputs of a ``GET`` run: every query parameter except fal's own, as strings."""
    return {k: v for k, v in params.items() if k not in RESERVED_QUERY_PARAMS}


async def read_input(request: Request) -> Input:
    """The model input of a run or submit request."""
    if request.method == "GET":
        return query_input(request.query_params)
    return parse_body(await request.body())


def require_prompt(payload: Input) -> str:
    """The ``prompt`` every fake model requires."""
    prompt = payload.get("prompt")
    if prompt is None:
        raise InputError((("body", "prompt"), "field required", "missing"))
    if not isinstance(prompt, str):
        raise InputError((("body", "prompt"), "Input should be a valid string", "string_type"))
    return prompt


def check_request_timeout(headers: Mapping[str, str]) -> None:
    """Reject a start timeout that is not a finite number of seconds above 1 (fal: 400)."""
    raw = headers.get(TIMEOUT_HEADER)
    if raw is None:
        return
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 1:
        raise typed_error(
            400, f"{TIMEOUT_HEADER} must be a number of seconds above 1", "bad_request"
        )
