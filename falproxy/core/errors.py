"""Every error falproxy raises, in one tree, and how a refusal looks on the wire.

A pipeline step refuses a call by raising a :class:`ProxyError`; each front end turns it
into ``{"detail": "..."}`` with the error's status through its one response writer. The
detail is written by us and is always safe to show a browser: never an exception's text,
a header value or the key. ``outcome`` is what the call's event records.

::

    Exception
    ├── ConfigError                       bad setting at start-up (one safe line, no status)
    │   └── InvalidSetting                one setting's value, relabelled with what the user wrote
    ├── ClientDisconnected                the client left mid-call (no response is possible)
    ├── UpstreamBroken                    fal cut, garbled or stalled a response body already begun
    └── ProxyError                  500   refused  (base: status, detail, headers, outcome)
        ├── BadRequest              400   refused  malformed body, framing or header bytes
        │   ├── MissingTarget       400   refused  no x-fal-target-url (or fal_target_url)
        │   └── InvalidHeaderValue  400   refused  a forwarded header value not printable ASCII
        ├── Unauthorized            401   refused  no acceptable identity
        ├── EndpointNotAllowed      403   refused  app, token request or origin outside the policy
        │   └── OriginNotAllowed    403   refused  a WebSocket handshake from a foreign page
        ├── PaymentRequired         402   limited  a spend budget is used up, or a price is unknown
        │   └── BudgetSpent         402   limited  names the rule, what was spent, when it resets
        ├── NotFound                404   refused  a path the proxy does not serve
        │   └── RequestNotFound     404   refused  a queued request this caller does not own
        ├── MethodNotAllowed        405   refused  a method that is not proxied (Allow header)
        ├── RequestTimeout          408   refused  the request body stalled or ran past its deadline
        ├── InvalidTarget           412   refused  malformed target, or not on an allowed URL
        ├── PayloadTooLarge         413   refused  request body over the configured cap
        ├── UnsupportedMediaType    415   refused  a request body not declared as JSON
        ├── MisdirectedRequest      421   refused  a Host header this proxy does not serve
        ├── RateLimited             429   limited  a rate limit (Retry-After, RateLimit-*)
        │   └── TooManySockets      429   limited  an identity already holds its open sockets
        ├── HeadersTooLarge         431   refused  too many or too large request headers
        ├── HookFailed              500   refused  a user hook crashed (never fail open)
        ├── UpstreamUnavailable     502   upstream_error  fal unreachable, or it broke the response
        │   └── UpstreamTimeout     504   upstream_error  fal too slow to connect or answer
        ├── IdentityUnavailable     503   refused  the JWKS could not be fetched
        ├── LimiterUnavailable      503   refused  rate-limit storage down and failing closed
        └── StoreUnavailable        503   refused  ownership/spend storage down (always closed)

Upstream failures carry a ``cause`` (which host, which phase, which error) for the one
warning the operator reads; it never reaches the client.
"""

from __future__ import annotations

import json
import re

from falproxy.core.outcomes import Outcome

JSON_HEADERS = ((b"content-type", b"application/json"), (b"cache-control", b"no-store"))


class ConfigError(Exception):
    """Invalid configuration found at start-up; its message is one safe line."""


class InvalidSetting(ConfigError):
    """One setting's value is wrong: ``setting`` is its field name, ``problem`` the rest.

    Raised by the settings' own validation, which does not know where a value came from;
    the configuration loader re-raises it as a :class:`ConfigError` that names what the
    user actually wrote (``FALPROXY_BODY_TIMEOUT``, ``falproxy.toml: body_timeout``).
    ``others`` are further settings the problem names by field name, relabelled the same way.
    """

    def __init__(self, setting: str, problem: str, *, others: tuple[str, ...] = ()) -> None:
        self.setting = setting
        self.problem = problem
        self.others = others
        super().__init__(f"{setting} {problem}")

    def label(self, labels: dict[str, str]) -> str:
        """The message with every setting named as in ``labels`` (default: field name)."""
        problem = self.problem
        for other in self.others:
            problem = re.sub(rf"\b{other}\b", labels.get(other, other), problem)
        return f"{labels.get(self.setting, self.setting)} {problem}"


class ClientDisconnected(Exception):
    """The client went away while the proxy was reading or relaying."""


class UpstreamBroken(Exception):
    """The upstream broke a response whose head was already relayed: cut, malformed, silent.

    Not an HTTP answer (no status): the client's response has started, so the relay can
    only end it early, without its final chunk, for the client to see it truncated.
    """


class ProxyError(Exception):
    """A refusal with an HTTP status and a browser-safe ``detail``."""

    status: int = 500
    default_detail: str = "Internal proxy error"
    outcome: Outcome = Outcome.REFUSED

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        self.caller: str | None = None  # the identity, when the refusal came after it
        self.app_id: str | None = None  # the app the policy refused, for the call's event
        super().__init__(self.detail)

    def body(self) -> bytes:
        """The JSON body sent to the client."""
        return json.dumps({"detail": self.detail}).encode()

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Raw headers for the error response."""
        return json_headers(len(self.body()), self.headers)


def json_headers(length: int, extra: dict[str, str] | None = None) -> list[tuple[bytes, bytes]]:
    """Headers of a JSON answer written by the proxy itself (never cached)."""
    headers = [*JSON_HEADERS, (b"content-length", str(length).encode())]
    if extra:
        headers.extend((k.lower().encode(), v.encode("latin-1")) for k, v in extra.items())
    return headers


class BadRequest(ProxyError):
    status = 400
    default_detail = "Malformed request"


class MissingTarget(BadRequest):
    default_detail = "Missing the x-fal-target-url header"


class InvalidHeaderValue(BadRequest):
    default_detail = "A forwarded header value must be printable ASCII"


class Unauthorized(ProxyError):
    status = 401
    default_detail = "Unauthorized"


class EndpointNotAllowed(ProxyError):
    status = 403
    default_detail = "This endpoint is not allowed by the proxy's policy"


class OriginNotAllowed(EndpointNotAllowed):
    default_detail = "WebSockets from this origin are not allowed"


class PaymentRequired(ProxyError):
    status = 402
    default_detail = "This call cannot be paid for"
    outcome = Outcome.LIMITED


class BudgetSpent(PaymentRequired):
    """A spend rule has no room left; the body names it, the amounts and the reset time."""

    default_detail = "A spend limit is reached"

    def __init__(self, detail: str, *, fields: dict[str, object], retry_after: int) -> None:
        super().__init__(detail, headers={"retry-after": str(retry_after)})
        self.fields = fields

    def body(self) -> bytes:
        return json.dumps({"detail": self.detail, **self.fields}).encode()


class NotFound(ProxyError):
    status = 404
    default_detail = "Not found"


class RequestNotFound(NotFound):
    """Not 403: the answer must not confirm that someone else's request id exists."""

    default_detail = "Request not found"


class MethodNotAllowed(ProxyError):
    status = 405
    default_detail = "Method not allowed"


class RequestTimeout(ProxyError):
    status = 408
    default_detail = "The request body was not received in time"


class InvalidTarget(ProxyError):
    status = 412
    default_detail = "The target URL is malformed or not allowed"


class PayloadTooLarge(ProxyError):
    status = 413
    default_detail = "Request body too large"


class UnsupportedMediaType(ProxyError):
    status = 415
    default_detail = "Request bodies must be JSON (Content-Type: application/json)"


class MisdirectedRequest(ProxyError):
    status = 421
    default_detail = "This proxy does not serve that host name"


class RateLimited(ProxyError):
    status = 429
    default_detail = "Rate limit exceeded"
    outcome = Outcome.LIMITED


class TooManySockets(RateLimited):
    default_detail = "Too many open WebSockets"


class HeadersTooLarge(ProxyError):
    status = 431
    default_detail = "Request headers too large"


class HookFailed(ProxyError):
    """A user hook raised something other than ``ProxyError``: refuse, never fail open."""

    status = 500
    default_detail = "The proxy could not check this call"


class UpstreamUnavailable(ProxyError):
    status = 502
    default_detail = "The fal API could not be reached"
    outcome = Outcome.UPSTREAM_ERROR

    def __init__(
        self,
        detail: str | None = None,
        *,
        cause: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail, headers=headers)
        # Why, for the operator's log line (host, phase, errno); never sent to the client.
        self.cause = cause


class IdentityUnavailable(ProxyError):
    """The JWKS could not be fetched: the token may be fine, so this is not a 401."""

    status = 503
    default_detail = "Sign-in cannot be checked right now; try again shortly"


class LimiterUnavailable(ProxyError):
    status = 503
    default_detail = "Rate limiting is unavailable; try again shortly"


class StoreUnavailable(ProxyError):
    """Money and ownership fail closed: a call is never admitted unrecorded or uncounted."""

    status = 503
    default_detail = "Request ownership and budgets are unavailable; try again shortly"


class UpstreamTimeout(UpstreamUnavailable):
    status = 504
    default_detail = "The fal API did not answer in time"
