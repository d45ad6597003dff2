"""The one error type of falproxy, and the one place it becomes a response.

Every pipeline step raises a :class:`ProxyError` (or a subclass) when it refuses a call.
The app turns it into ``{"detail": "..."}`` with the error's status. The detail is written
by us and is always safe to show a browser: never an exception's text, a header value or
the key.

==========================  ======  ===============================================
class                       status  when
==========================  ======  ===============================================
``MissingTarget``           400     no ``x-fal-target-url``
``BadRequest``              400     a body the proxy must read is malformed
``Unauthorized``            401     no acceptable identity
``EndpointNotAllowed``      403     app or token request outside the policy
``NotFound``                404     a path the proxy does not serve
``MethodNotAllowed``        405     a method that is not proxied
``RequestTimeout``          408     the request body stalled past the body timeout
``InvalidTarget``           412     malformed target, or not on an allowed URL
``PayloadTooLarge``         413     request body over the configured cap
``UnsupportedMediaType``    415     a request body not declared as JSON
``HeadersTooLarge``         431     too many or too large request headers
``UpstreamUnavailable``     502     fal unreachable, or it broke the response
``UpstreamTimeout``         504     fal too slow to connect or answer
==========================  ======  ===============================================
"""

from __future__ import annotations

import json
import re


class ProxyError(Exception):
    """A refusal with an HTTP status and a browser-safe ``detail``."""

    status: int = 500
    default_detail: str = "Internal proxy error"
    outcome: str = "refused"  # the ProxyEvent outcome of a call that ends in this error

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        self.detail = detail or self.default_detail
        self.headers = headers or {}
        self.caller: str | None = None  # the identity, when the refusal came after it
        super().__init__(self.detail)

    def body(self) -> bytes:
        """The JSON body sent to the client."""
        return json.dumps({"detail": self.detail}).encode()

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """Raw ASGI headers for the error response."""
        body_length = str(len(self.body())).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", body_length),
            (b"cache-control", b"no-store"),
        ]
        headers.extend((k.lower().encode(), v.encode()) for k, v in self.headers.items())
        return headers


class MissingTarget(ProxyError):
    status = 400
    default_detail = "Missing the x-fal-target-url header"


class BadRequest(ProxyError):
    status = 400
    default_detail = "Malformed request"


class Unauthorized(ProxyError):
    status = 401
    default_detail = "Unauthorized"


class EndpointNotAllowed(ProxyError):
    status = 403
    default_detail = "This endpoint is not allowed by the proxy's policy"


class NotFound(ProxyError):
    status = 404
    default_detail = "Not found"


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


class HeadersTooLarge(ProxyError):
    status = 431
    default_detail = "Request headers too large"


class UpstreamUnavailable(ProxyError):
    status = 502
    default_detail = "The fal API could not be reached"
    outcome = "upstream_error"


class UpstreamTimeout(ProxyError):
    status = 504
    default_detail = "The fal API did not answer in time"
    outcome = "upstream_error"


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
