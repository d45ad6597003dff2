"""before_request hook: free users may not call the expensive endpoints.

Run: FAL_KEY=... FALPROXY_JWT_SECRET=... uvicorn --factory examples.hooks_block_expensive:create_app
The plan comes from the verified JWT's claims (`"plan": "pro"`); anything else is free.
"""

from __future__ import annotations

import dataclasses

from falproxy import FalProxy, ProxyConfig, Reply, RequestContext
from falproxy.core.policy import compile_glob

EXPENSIVE = compile_glob("fal-ai/flux-pro/**")


async def pro_only(context: RequestContext) -> Reply | None:
    """402 for a free user calling an expensive app; None lets the call go on."""
    plan = context.identity.claims.get("plan") if context.identity else None
    if context.app_id and EXPENSIVE.fullmatch(context.app_id) and plan != "pro":
        return Reply(402, {"detail": "This model needs the Pro plan"})
    return None


def create_app(config: ProxyConfig | None = None) -> FalProxy:
    config = config or ProxyConfig.from_env()
    return FalProxy(dataclasses.replace(config, before_request=(pro_only,)))
