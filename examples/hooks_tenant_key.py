"""resolve_key hook: each tenant's calls go out with that tenant's own fal key.

Run: FAL_KEY=... FALPROXY_AUTH_TOKENS=... uvicorn --factory examples.hooks_tenant_key:create_app
Tenants without a key of their own use the server's FAL_KEY.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from falproxy import FalCredential, FalProxy, Identity, ProxyConfig, RequestContext, ResolveKey


def tenant_keys(keys: Mapping[str, FalCredential]) -> ResolveKey:
    """A resolve_key hook looking the identity up in ``keys`` (loaded once, at start-up)."""

    async def resolve(context: RequestContext) -> FalCredential | None:
        identity: Identity | None = context.identity
        return keys.get(identity.id) if identity else None

    return resolve


def create_app(
    config: ProxyConfig | None = None, keys: Mapping[str, FalCredential] | None = None
) -> FalProxy:
    config = config or ProxyConfig.from_env()
    resolve = tenant_keys(keys or {})
    return FalProxy(dataclasses.replace(config, resolve_key=(resolve,)))
