"""Behaviour chosen through the endpoint id, so it survives any proxy in between.

Owner ``fake`` selects a scenario by alias (``fake/fail-500``); every other id behaves like the
default image model. An :class:`Outcome` is what a run produces, whether it is answered at once
(``fal.run``) or stored and revealed at completion (queue result).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import FakeError
from .ids import EndpointId
from .inputs import Input, InputError
from .outputs import image_output

SCENARIO_OWNER = "fake"
DEFAULT_SCENARIO = "image"
# Scenarios that change the model's result; the rest (slow, never-completes, ...) change timing.
ERROR_SCENARIOS = frozenset({"fail-422", "fail-500", "timeout-user"})


@dataclass(frozen=True)
class Outcome:
    """A model's answer: status, JSON body, headers, and the queue's ``error`` fields."""

    status_code: int
    body: object
    headers: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None

    def as_error(self) -> FakeError:
        """Raise-able form for synchronous endpoints."""
        return FakeError(self.status_code, self.body, self.headers)


def scenario_of(endpoint: EndpointId) -> str:
    """The scenario an id selects; plain fal ids get the default image model."""
    if endpoint.namespace is None and endpoint.owner == SCENARIO_OWNER:
        return endpoint.alias
    return DEFAULT_SCENARIO


def validation_failure(problems: InputError) -> Outcome:
    """A 422 as a model's input validation produces it."""
    return Outcome(
        422,
        {"detail": problems.details()},
        {"x-fal-retryable": "false"},
        error="Invalid status code: 422",
        error_type="validation_error",
    )


def typed_failure(
    status_code: int, text: str, error_type: str, extra: Mapping[str, str] | None = None
) -> Outcome:
    """An infrastructure failure with ``error_type`` in body and header."""
    all_headers = {"x-fal-error-type": error_type, **(extra or {})}
    body = {"detail": text, "error_type": error_type}
    return Outcome(status_code, body, all_headers, error=text, error_type=error_type)


def cancelled() -> Outcome:
    """What a cancelled queue request ends with (our choice; fal's is unconfirmed)."""
    return typed_failure(499, "Request was cancelled by the client", "client_cancelled")


def scenario_failure(scenario: str) -> Outcome | None:
    """The forced failure of an error scenario, if it is one."""
    if scenario == "fail-422":
        problem = (("body", "prompt"), "fake validation failure", "value_error")
        return validation_failure(InputError(problem))
    if scenario == "fail-500":
        return typed_failure(500, "Internal server error", "internal_error")
    if scenario == "timeout-user":
        user = {"x-fal-request-timeout-type": "user"}  # never retried by the JS client
        return typed_failure(504, "Request timed out", "request_timeout", user)
    return None


def outcome_for(endpoint: EndpointId, payload: Input, base_url: str) -> Outcome:
    """Run the fake model. Error scenarios fail whatever the input; others validate it."""
    forced = scenario_failure(scenario_of(endpoint))
    if forced is not None:
        return forced
    try:
        return Outcome(200, image_output(payload, base_url))
    except InputError as problems:
        return validation_failure(problems)
