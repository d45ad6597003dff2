"""Every front end a user can pick, as the contract suite starts them, with one configuration.

Each front end is a real server process started with its documented command
(``examples_server.SERVERS`` / ``EXTRA_SERVERS``) and the same environment: the test key,
every fal host mapped to the fake, an endpoint allow-list, two bearer tokens (so request
ownership is on), a rate limit and a spend limit that only one endpoint glob each hits,
a short body timeout, a small body cap and one CORS origin.
A front end that cannot offer a feature says why, in ``no_websockets`` / ``no_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.support.live import ROUTE

CONTRACT_TOKEN = "contract-token"
# A second identity: requests it did not submit are 404 to it (request ownership, issue 20).
OTHER_TOKEN = "contract-other"
ALLOWED_ORIGIN = "https://app.example.com"
OTHER_ORIGIN = "https://evil.example.com"
MAX_BODY_BYTES = 8192
BODY_TIMEOUT = 1.0
# A whole body must arrive within this, however steadily it drips.
BODY_DEADLINE = 2.0
# The only glob the rate limit covers; the fake serves any id outside ``fake/`` as its image model.
# Short socket-side timeouts, so a busy WebSocket outliving three times the longest timeout
# of the contract configuration (BODY_DEADLINE) shows none of them cuts a relayed socket.
HEADER_TIMEOUT = 1.0
WS_PING = 1.0
SOCKET_OUTLIVES = 3 * max(BODY_DEADLINE, BODY_TIMEOUT, HEADER_TIMEOUT, WS_PING) + 0.5
LIMITED_APP = "fal-ai/limited/model"
REALTIME_APP = "fal-ai/fast-lcm-diffusion"
# The only glob the spend limit covers: two calls at the fake's default price fill it.
BUDGET_APP = "fal-ai/budget/model"
SPEND_LIMIT = "0.02/day fal-ai/budget/**"
ALLOWED_ENDPOINTS = f"fal-ai/flux/**,fake/**,fal-ai/limited/**,{REALTIME_APP}/**,fal-ai/budget/**"

WSGI_NO_SOCKETS = "WSGI has no WebSockets"
# uvicorn closes a connection as soon as the client half-closes it (its protocols do not
# implement eof_received), so a short body can get no answer there: the guarantee left is
# that the truncated request is never forwarded as if complete.
UVICORN_EOF = "uvicorn closes the connection when the client half-closes it"
# hypercorn, depending on timing, closes the connection or answers an empty 400 itself (h11
# sees the body end before its length).
HYPERCORN_EOF = "hypercorn closes the connection, or answers 400 itself, on a half-close"
# granian reports the half-close as http.disconnect; the proxy, seeing the client gone, sends
# nothing, and granian then answers 500 "Internal server error" (text) on its own.
GRANIAN_EOF = "granian reports a half-close as a disconnect and answers 500 itself"
# Under ASGI the server performs the opening handshake; the app sees neither the key nor
# (in a websocket scope) the method. These two accept handshakes RFC 6455 4.2.1 refuses.
HYPERCORN_HANDSHAKES = "hypercorn checks neither the key's form nor duplicates (a POST: 400)"
GRANIAN_HANDSHAKES = "granian upgrades any request naming websocket, whatever its key or method"
# hypercorn 0.18 reports a client's clean close to the app as code 1006 (no close frame),
# so the relay tells fal the client vanished: 1011 (tests/live: uvicorn reports 1000).
HYPERCORN_CLOSE = "hypercorn reports a client's clean close as 1006 to the app"


@dataclass(frozen=True)
class FrontEnd:
    """One way to serve the proxy: its server command, route and what it cannot do."""

    name: str
    server: str  # a key of SERVERS or EXTRA_SERVERS
    ready_path: str = "/"
    route: str = ROUTE
    no_websockets: str | None = None  # why the front end serves no WebSockets
    no_ops: str | None = None  # why it serves no /healthz, /readyz, /metrics
    eof_closes: str | None = UVICORN_EOF  # why a half-closed request gets no answer
    no_body_timeout: str | None = None  # why a stalled body is not the proxy's to time out
    # The statuses the server itself may answer then (never JSON), instead of closing.
    eof_server_statuses: frozenset[int] = frozenset()
    # Handshakes the ASGI server completes or refuses itself before the app sees them
    # (case of tests/support/ws_handshakes.py -> the server's status), and why.
    server_handshakes: tuple[str, dict[str, int]] | None = None
    # The close code fal hears when the client closes normally, if the server does not
    # report the client's code to the app (and why).
    client_close_to_fal: tuple[str, int] | None = None


FRONT_ENDS = (
    FrontEnd("serve", "falproxy-serve", ready_path="/healthz"),  # the native protocol
    FrontEnd("serve-asgi", "falproxy-serve-asgi", ready_path="/healthz"),
    FrontEnd("fastapi-mount", "fastapi-uvicorn"),
    FrontEnd(
        "fastapi-router",
        "fastapi-router-uvicorn",
        no_websockets="fal_proxy_router adds an HTTP APIRouter route only; mount() relays sockets",
    ),
    FrontEnd(
        "starlette-mount",
        "starlette-uvicorn",
        # A plain mount routes its own prefix: the bare route is a 307 to route + "/".
        route=ROUTE + "/",
        no_ops="a plain Starlette app.mount routes only its own prefix, so no /healthz",
    ),
    FrontEnd("django-asgi", "django-uvicorn"),
    FrontEnd(
        "django-view-asgi",
        "django-uvicorn-view",
        no_websockets="Django's ASGI handler refuses WebSockets; the urls.py view is HTTP only",
        # Documented: under ASGI, serve the route with fal_proxy_asgi, which streams it.
        no_body_timeout="Django's ASGI handler reads the whole body before any view runs",
    ),
    FrontEnd("django-view-wsgi", "django-gunicorn", no_websockets=WSGI_NO_SOCKETS, eof_closes=None),
    FrontEnd("flask-gunicorn", "flask-gunicorn", no_websockets=WSGI_NO_SOCKETS, eof_closes=None),
    FrontEnd("flask-run", "flask-run", no_websockets=WSGI_NO_SOCKETS, eof_closes=None),
    FrontEnd(
        "fastapi-hypercorn",
        "fastapi-hypercorn",
        eof_closes=HYPERCORN_EOF,
        eof_server_statuses=frozenset({400}),
        server_handshakes=(
            HYPERCORN_HANDSHAKES,
            {
                "short key": 101,
                "key not base64": 101,
                "two keys": 101,
                "POST": 400,
            },
        ),
        client_close_to_fal=(HYPERCORN_CLOSE, 1011),
    ),
    FrontEnd(
        "fastapi-granian",
        "fastapi-granian",
        eof_closes=GRANIAN_EOF,
        eof_server_statuses=frozenset({500}),
        server_handshakes=(
            GRANIAN_HANDSHAKES,
            {
                "short key": 101,
                "key not base64": 101,
                "two keys": 101,
                "POST": 101,
                "two protocols": 101,
            },
        ),
    ),
)
# The front ends the official client runs against in a browser.
BROWSER_FRONT_ENDS = frozenset({"serve", "serve-asgi", "fastapi-mount"})


def contract_env(*cors_origins: str) -> dict[str, str]:
    """The FALPROXY_* settings every front end gets (FAL_KEY and upstreams come with them)."""
    return {
        "FALPROXY_ALLOWED_ENDPOINTS": ALLOWED_ENDPOINTS,
        "FALPROXY_AUTH_TOKENS": f"{CONTRACT_TOKEN},{OTHER_TOKEN}",
        "FALPROXY_RATE_LIMIT": "1/minute fal-ai/limited/**",
        "FALPROXY_SPEND_LIMIT": SPEND_LIMIT,
        "FALPROXY_BODY_TIMEOUT": f"{BODY_TIMEOUT:g}",
        "FALPROXY_BODY_DEADLINE": f"{BODY_DEADLINE:g}",
        "FALPROXY_HEADER_TIMEOUT": f"{HEADER_TIMEOUT:g}",
        "FALPROXY_WS_PING_INTERVAL": f"{WS_PING:g}",
        "FALPROXY_WS_PING_TIMEOUT": f"{WS_PING:g}",
        "FALPROXY_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
        "FALPROXY_CORS_ORIGINS": ",".join((ALLOWED_ORIGIN, *cors_origins)),
    }
