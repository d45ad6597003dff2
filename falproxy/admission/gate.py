"""Admission: identity -> before_request -> limit -> key, for HTTP and WebSocket alike.

Once the target is parsed and the policy has named its app, every call, whether an HTTP
request or a WebSocket handshake, passes through :meth:`Gate.admit`. It depends only on
the ASGI scope, so both relays run the very same checks in the very same order. It
returns an :class:`Admission` (the identity and the upstream ``Authorization`` value),
or one whose ``reply`` short-circuits the call, or raises ``ProxyError`` (401, 429, 503).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from falproxy.admission.auth import CHALLENGE, JWTVerifier, StaticTokens, bearer_token
from falproxy.admission.ratelimit import RateLimiter
from falproxy.admission.ws_limits import SocketLimits
from falproxy.config.checks import has_authentication
from falproxy.config.settings import ProxyConfig
from falproxy.core.client_address import ClientAddress, parse_networks
from falproxy.core.errors import HookFailed, ProxyError, Unauthorized
from falproxy.core.hooks import (
    Authenticate,
    Identity,
    Reply,
    RequestContext,
    first_credential,
    first_identity,
    first_reply,
)
from falproxy.core.targets import Target
from falproxy.core.types import Scope
from falproxy.ops.metrics import ProxyMetrics

logger = logging.getLogger("falproxy.core.hooks")


@dataclass(frozen=True, slots=True)
class Admission:
    """The outcome of admitting one call."""

    context: RequestContext  # with the identity filled in
    authorization: bytes  # the upstream ``Authorization`` value; never shown anywhere
    reply: Reply | None = None  # set when a before_request hook answered instead

    @property
    def identity(self) -> Identity | None:
        return self.context.identity


class Gate:
    """The admission steps of one proxy, built once from its config."""

    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics) -> None:
        self._default_authorization = config.require_credential().authorization
        self._authenticate = _builtin_authenticators(config) + config.authenticate
        self._builtin_bearer = bool(config.auth_tokens or config.jwt_secret or config.jwks_url)
        self._identity_required = has_authentication(config) and not config.allow_anonymous
        self._before = config.before_request
        self._resolve = config.resolve_key
        self._address = ClientAddress(parse_networks(config.trusted_proxies))
        self.limiter = (
            RateLimiter(
                config.rate_limits,
                storage_url=config.redis_url,
                fail_open=config.rate_limit_fail_open,
                on_error=metrics.storage_error,
                on_limited=metrics.rate_limited,
                ipv6_prefix=config.ipv6_prefix,
            )
            if config.rate_limits
            else None
        )
        # What an admitted WebSocket may do afterwards (ws_limits.py); unlimited by default.
        self.sockets = SocketLimits(
            message_rate=config.ws_message_rate,
            max_sockets=config.ws_max_sockets,
            storage_url=config.redis_url,
            fail_open=config.rate_limit_fail_open,
            on_error=metrics.storage_error,
            on_limited=metrics.rate_limited,
            ipv6_prefix=config.ipv6_prefix,
        )

    async def aclose(self) -> None:
        if self.limiter is not None:
            await self.limiter.aclose()
        await self.sockets.aclose()

    async def admit(self, scope: Scope, target: Target, app_id: str | None) -> Admission:
        """Run identity, before_request, limit and key for one call, in that order.

        A hook that crashes refuses the call with 500; its exception's text (which may
        quote a token or a request) is not logged, only its type.
        """
        try:
            return await self._admit(scope, target, app_id)
        except ProxyError:
            raise
        except Exception as exc:
            logger.error("a hook failed while admitting a call: %s", type(exc).__name__)
            raise HookFailed() from None

    def address(self, scope: Scope) -> str:
        """The caller's address as admission keys it (trusted proxies applied)."""
        return self._address(scope)

    async def count_mint(self, scope: Scope, identity: str | None, apps: Sequence[str]) -> None:
        """Count a policed token mint against the rate rules of the apps it names.

        Admission already counted the mint against the rules that count every call; this
        adds the rules of the apps a token for ``apps`` may call (see ``ratelimit.py``).
        """
        if self.limiter is None:
            return
        try:
            await self.limiter.check_mint(apps, identity, self._address(scope))
        except ProxyError as refusal:
            refusal.caller = identity
            raise

    async def _admit(self, scope: Scope, target: Target, app_id: str | None) -> Admission:
        method = "WEBSOCKET" if scope["type"] == "websocket" else scope["method"]
        context = RequestContext(target, app_id, method, scope, self._address(scope))
        identity = await self._identify(context)
        if identity is not None:  # replace() is the dearest step of an anonymous call
            context = dataclasses.replace(context, identity=identity)
        reply = await first_reply(self._before, context)
        if reply is not None:
            return Admission(context, b"", reply)
        if self.limiter is not None:
            who = context.identity.id if context.identity else None
            try:
                await self.limiter.check(app_id, who, context.client)
            except ProxyError as refusal:
                refusal.caller = who  # so the "limited" event says who was limited
                raise
        credential = await first_credential(self._resolve, context)
        authorization = credential.authorization if credential else self._default_authorization
        return Admission(context, authorization)

    async def _identify(self, context: RequestContext) -> Identity | None:
        identity = await first_identity(self._authenticate, context)
        if identity is not None:
            return identity
        if self._builtin_bearer and bearer_token(context) is not None:
            raise Unauthorized("Invalid bearer token", headers=CHALLENGE)
        if self._identity_required:
            raise Unauthorized(headers=CHALLENGE)
        return None


def _builtin_authenticators(config: ProxyConfig) -> tuple[Authenticate, ...]:
    hooks: list[Authenticate] = []
    if config.auth_tokens:
        hooks.append(StaticTokens(config.auth_tokens))
    if config.jwt_secret or config.jwks_url:
        hooks.append(
            JWTVerifier(
                secret=config.jwt_secret,
                jwks_url=config.jwks_url,
                audience=config.jwt_audience,
                issuer=config.jwt_issuer,
                jwks_cache_seconds=config.jwks_cache_seconds,
            )
        )
    return tuple(hooks)
