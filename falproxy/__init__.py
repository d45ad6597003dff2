"""falproxy: a streaming, policy-enforcing server-side proxy for the fal.ai API.

Browsers call fal through an app's own server, which checks each target URL against an
allow-list and adds the ``FAL_KEY`` that the browser must never hold.
"""

from falproxy._version import __version__
from falproxy.asgi.app import FalProxy
from falproxy.config.settings import ProxyConfig
from falproxy.core.errors import (
    BadRequest,
    ConfigError,
    EndpointNotAllowed,
    HeadersTooLarge,
    InvalidTarget,
    LimiterUnavailable,
    MethodNotAllowed,
    MissingTarget,
    PayloadTooLarge,
    ProxyError,
    RateLimited,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from falproxy.core.events import ProxyEvent
from falproxy.core.hooks import (
    Authenticate,
    BeforeRequest,
    Identity,
    OnEvent,
    Reply,
    RequestContext,
    ResolveKey,
)
from falproxy.core.keys import FalCredential
from falproxy.core.policy import DEFAULT_ALLOWED_URLS, Policy
from falproxy.core.rate_rules import RateLimit
from falproxy.core.targets import ALLOWED_HOSTS, Target, parse_target

__all__ = [
    "ALLOWED_HOSTS",
    "DEFAULT_ALLOWED_URLS",
    "Authenticate",
    "BadRequest",
    "BeforeRequest",
    "ConfigError",
    "EndpointNotAllowed",
    "FalCredential",
    "FalProxy",
    "HeadersTooLarge",
    "Identity",
    "InvalidTarget",
    "LimiterUnavailable",
    "MethodNotAllowed",
    "MissingTarget",
    "OnEvent",
    "PayloadTooLarge",
    "Policy",
    "ProxyConfig",
    "ProxyError",
    "ProxyEvent",
    "RateLimit",
    "RateLimited",
    "Reply",
    "RequestContext",
    "RequestTimeout",
    "ResolveKey",
    "Target",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "__version__",
    "parse_target",
]
