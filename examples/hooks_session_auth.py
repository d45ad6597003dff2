"""Authenticate hook: the app's own session cookie decides who is calling.

Run: FAL_KEY=... uvicorn --factory examples.hooks_session_auth:create_app
The built-in checks need no code: FALPROXY_AUTH_TOKENS (static bearer tokens) or
FALPROXY_JWT_SECRET / FALPROXY_JWKS_URL (JWTs from any provider, identity = `sub`).
This hook is for apps that already keep server-side sessions.
"""

from __future__ import annotations

import dataclasses
from http.cookies import SimpleCookie

from falproxy import FalProxy, Identity, ProxyConfig, RequestContext

# Stands in for the app's session store (Redis, a database table, a signed cookie...).
SESSIONS = {"session-abc": "alice", "session-def": "bob"}


async def session_user(context: RequestContext) -> Identity | None:
    """The user of the `session` cookie, or None (then the call gets 401)."""
    cookie = SimpleCookie(context.header("cookie") or "")
    morsel = cookie.get("session")
    user = SESSIONS.get(morsel.value) if morsel else None
    return Identity(user) if user else None


def create_app(config: ProxyConfig | None = None) -> FalProxy:
    config = config or ProxyConfig.from_env()
    return FalProxy(dataclasses.replace(config, authenticate=(session_user,)))
