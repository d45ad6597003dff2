"""The whole admission of a call, the same for every front end: one ``await`` each.

:meth:`Pipeline.admit` runs, in order: method, head limits, host, target, policy (the
pure :class:`~falproxy.core.pipeline.Rules`), then identity, ``before_request`` hooks, rate
limits and the key (the :class:`~falproxy.admission.gate.Gate`), then the body plan, then
request ownership and spend budgets (:mod:`falproxy.admission.requests`), last because a
budget's hold must reach the relay, which releases it however the call ends. A
front end cannot skip a step because it cannot call them one by one: it gets an
:class:`Admitted` (or a hook's answer), or a ``ProxyError``, and does only its own I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from falproxy.admission.gate import Gate
from falproxy.admission.requests import RequestGuard
from falproxy.admission.watch import CallWatch
from falproxy.config.settings import ProxyConfig
from falproxy.core.answers import Answer
from falproxy.core.body import BodyPlan, plan_body
from falproxy.core.client_address import ClientAddress, parse_networks
from falproxy.core.cors import CorsPolicy
from falproxy.core.hooks import Identity
from falproxy.core.hosts import HostRule
from falproxy.core.lifecycle import HTTP, CallRecord
from falproxy.core.pipeline import Incoming, Rules
from falproxy.core.targets import Target
from falproxy.core.types import Scope
from falproxy.core.upstreams import UpstreamMap
from falproxy.ops.metrics import ProxyMetrics


# Per call and read-only by convention: not frozen, whose __init__ is slower on the hot path.
@dataclass(slots=True)
class Admitted:
    """A call the proxy agreed to relay, and everything the front end needs to send it."""

    target: Target
    app_id: str | None
    identity: Identity | None
    authorization: bytes  # the upstream ``Authorization`` value; never shown anywhere
    url: str  # where to send it: the target, or its upstream mapping
    body: BodyPlan | None  # None for a WebSocket
    client: str = ""  # the caller's address as admission keyed it (per-caller socket limits)
    watch: CallWatch | None = None  # ownership and budgets: the relay reports fal's answer


class Pipeline:
    """Everything that decides about a call, built once per proxy from its settings."""

    def __init__(self, config: ProxyConfig, metrics: ProxyMetrics) -> None:
        self.config = config
        self.policy = config.policy()
        self.rules = Rules(self.policy, HostRule(config.allowed_hosts), config.cors_origins)
        self.gate = Gate(config, metrics)
        self.cors = CorsPolicy(config.cors_origins)
        self.upstreams = UpstreamMap(config.upstreams)
        self.requests = RequestGuard(config, metrics.store_error)
        self._backups = config.backup_domains
        self.address = ClientAddress(parse_networks(config.trusted_proxies))

    async def aclose(self) -> None:
        await self.gate.aclose()
        await self.requests.aclose()

    async def admit(self, incoming: Incoming, record: CallRecord) -> Admitted | Answer:
        """Admit one call, filling ``record`` in as it goes; an ``Answer`` is a hook's reply.

        Raises ``ProxyError`` for every refusal; ``record`` then already names the app and,
        when known, the identity, so the refusal's event says who was refused for what.
        """
        record.client = self.address(incoming.scope)  # first: refusals say who was refused
        target, app_id = self.rules.check(incoming)
        record.app_id = app_id
        admission = await self.gate.admit(incoming.scope, target, app_id)
        identity = admission.identity
        record.identity = identity.id if identity is not None else None
        if admission.reply is not None:
            return admission.reply.answer()
        body = None
        if incoming.kind == HTTP:
            body = plan_body(
                incoming.method,
                target,
                incoming.headers,
                self.policy,
                self.config.max_body_bytes,
            )
        watch = None
        if self.requests.active:  # ownership and budgets, last: a hold is never left behind
            watch = await self.requests.admit(
                incoming.kind != HTTP,
                incoming.method,
                target,
                app_id,
                record.identity,
                admission.context.client,
                record,
            )
        record.admit(record.identity)
        return Admitted(
            target=target,
            app_id=app_id,
            identity=identity,
            authorization=admission.authorization,
            url=self.upstreams.url_for(target),
            body=body,
            client=admission.context.client,
            watch=watch,
        )

    def backup_url(self, target: Target) -> str | None:
        """Where ``target`` goes if its host cannot be reached (FALPROXY_BACKUP_DOMAINS).

        Asked only then, so a call that reaches fal pays nothing for it."""
        return self.upstreams.backup_url_for(target) if self._backups else None

    async def police_token(self, raw: bytes, scope: Scope, record: CallRecord) -> bytes:
        """A token-minting body, policed (the JSON to forward), and counted by the limits.

        The mint counts against every rate rule of an app it names, not only the rules
        that count every call (which admission already applied).
        """
        policed = self.policy.check_token_request(raw)
        apps = self.policy.token_apps(policed)
        await self.gate.count_mint(scope, record.identity, apps)
        if self.requests.budgets is not None:
            address = self.gate.address(scope)
            await self.requests.check_mint(apps, record.identity, address)
        return policed
