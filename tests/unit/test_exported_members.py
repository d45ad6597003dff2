"""The public surface is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import falproxy

PUBLIC = {
    "ALLOWED_HOSTS",
    "Authenticate",
    "BadRequest",
    "BeforeRequest",
    "ConfigError",
    "DEFAULT_ALLOWED_URLS",
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
}


def test_all_is_pinned() -> None:
    assert set(falproxy.__all__) == PUBLIC
    assert len(falproxy.__all__) == len(PUBLIC)


def test_every_exported_name_exists() -> None:
    for name in falproxy.__all__:
        assert getattr(falproxy, name) is not None, name
