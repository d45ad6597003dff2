"""Write docs/reference/settings.md, the configuration reference, from the settings table.

The set of settings, their environment variables, file keys and defaults come from
``falproxy.config.SETTINGS``; only the reference's meanings live here, and a setting
without one stops the script, so a new setting cannot ship undocumented.
``tests/unit/test_docs.py`` fails when the committed reference differs from what this
script writes.

Why meanings here and not the table's own ``doc`` field: ``doc`` is a one-line summary
kept short beside each field in ``falproxy/config/settings.py`` (about 60 characters);
the reference needs more for most settings (the status a refusal gets, the value syntax,
the hosts a mapping accepts, what a deprecated name maps to). Moving these texts into
``doc`` would make the table the one source; until then this is the reference's text.

Usage: python scripts/gen_config_reference.py [--check]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "reference" / "settings.md"

# Settings declared in the table whose behaviour another open issue is still building
# (checked against the code: nothing outside falproxy/config reads them yet). The lead
# empties an entry when the work merges.
PENDING: dict[str, str] = {}

# Section, then meaning, per setting (ProxyConfig field name).
MEANINGS: dict[str, tuple[str, str]] = {
    "credential": (
        "Key and routing",
        "The fal key, `key_id:key_secret`. Also read from `FAL_KEY_ID` plus `FAL_KEY_SECRET`;"
        " masked in every display.",
    ),
    "route": ("Key and routing", "The path the proxy serves."),
    "upstreams": (
        "Key and routing",
        "`HOST=BASE_URL` pairs, comma-separated: send one fal host's calls to another base URL"
        " (a fake, a test server). Hosts: `fal.run`, `queue.fal.run`, `rest.fal.ai`,"
        " `rest.alpha.fal.ai`, `ws.fal.run`.",
    ),
    "fake_url": (
        "Key and routing",
        "A running fake fal (`falproxy fake`) to send every call to, with the fake's key.",
    ),
    "allowed_urls": (
        "Allow-lists",
        "Comma list of URL globs over `host/path?query`; a target must match one (412 otherwise).",
    ),
    "allowed_endpoints": (
        "Allow-lists",
        "Comma list of app globs such as `fal-ai/flux/**`, applied to every method and queue URL"
        " (403 otherwise). Empty allows every app and is warned about at start-up.",
    ),
    "max_token_expiration": (
        "Allow-lists",
        "Cap, in seconds, on the `token_expiration` of tokens minted through the proxy.",
    ),
    "token_minting": (
        "Allow-lists",
        "`false` refuses token minting (`rest.fal.ai/tokens/`) with 403; `realtime.connect`"
        " of the official client then stops working.",
    ),
    "allowed_hosts": (
        "Allow-lists",
        "`Host` header values the proxy route answers (421 for others; `*` for any). Empty:"
        " under `falproxy serve` bound to a loopback address, loopback names only"
        " (`localhost`, `127.0.0.1`, `::1`); otherwise any.",
    ),
    "max_body_bytes": ("Limits and timeouts", "Largest request body (413 above it)."),
    "connect_timeout": ("Limits and timeouts", "Seconds to connect to fal."),
    "upstream_ca_file": (
        "Limits and timeouts",
        "A PEM CA bundle to trust for upstream TLS instead of the system store; for tests,"
        " private CAs and the benchmark. Certificates are always verified and the host name"
        " checked; a file that is missing or holds no PEM certificate stops start-up.",
    ),
    "upstream_timeout": (
        "Limits and timeouts",
        "Seconds to connect and receive fal's response headers (504 after). Synchronous runs"
        " answer only when inference ends, hence the long default.",
    ),
    "stream_idle_timeout": (
        "Limits and timeouts",
        "Seconds a response body may stay silent before the call is ended (fal sends an SSE"
        " keep-alive every 15 s).",
    ),
    "body_timeout": (
        "Limits and timeouts",
        "Seconds a request body may pause between two chunks (408 after).",
    ),
    "body_deadline": (
        "Limits and timeouts",
        "Seconds a whole request body may take, however steadily it drips (408 after).",
    ),
    "header_timeout": (
        "Limits and timeouts",
        "Seconds a request head (request line and headers) may take to arrive under"
        " `falproxy serve`; the connection is closed after it.",
    ),
    "server": (
        "Limits and timeouts",
        "HTTP front end of `falproxy serve`: `native` (default; requests parsed with llhttp"
        " directly, WebSockets handed to uvicorn) or `asgi` (uvicorn's own HTTP protocol)."
        " `--server` overrides it.",
    ),
    "max_connections": (
        "Limits and timeouts",
        "Open client connections per `falproxy serve` worker. At the cap, connections that"
        " have not sent a complete request head are closed first (oldest first), and from"
        " three quarters of it heads must arrive within 2 s. Empty: what the open-file limit"
        " allows (`ulimit -n`, raised to its hard limit at start), about half of it after a"
        " reserve; a value the limit cannot honour stops start-up.",
    ),
    "shutdown_grace": (
        "Limits and timeouts",
        "Seconds running calls may take to finish after SIGTERM.",
    ),
    "ws_max_message_bytes": (
        "WebSocket relay",
        "Largest message relayed either way; a larger one closes the socket with 1009.",
    ),
    "ws_idle_timeout": (
        "WebSocket relay",
        "Seconds without a data frame either way before both sides are closed (pings do not"
        " count).",
    ),
    "ws_ping_interval": ("WebSocket relay", "Seconds between keep-alive pings to fal."),
    "ws_ping_timeout": (
        "WebSocket relay",
        "Seconds a pong from fal may take before the upstream counts as dead.",
    ),
    "ws_max_queue": (
        "WebSocket relay",
        "Frames from fal buffered before the relay stops reading from fal (back-pressure).",
    ),
    "ws_message_rate": (
        "WebSocket relay",
        "Messages from client to fal per identity across its sockets, such as `10/second`;"
        " exceeding it closes the socket with 1008. Counted in the rate-limit storage"
        " (memory or Redis).",
    ),
    "ws_max_sockets": (
        "WebSocket relay",
        "Open sockets per identity, counted per process; the handshake above it gets 429.",
    ),
    "auth_tokens": (
        "Identity and rate limits",
        "Comma list of static bearer tokens; the identity is `token-<n>` (the position).",
    ),
    "jwt_secret": (
        "Identity and rate limits",
        "HS256/384/512 secret (32 characters or more) for bearer JWTs. Exclusive with `jwks_url`.",
    ),
    "jwks_url": (
        "Identity and rate limits",
        "Your identity provider's key set for RS/ES/PS/EdDSA bearer JWTs (https, or http on"
        " loopback).",
    ),
    "jwks_cache_seconds": (
        "Identity and rate limits",
        "Seconds a key fetched from `jwks_url` is trusted before the set is fetched again; an"
        " unknown key id triggers a refetch (at most one every 5 s).",
    ),
    "jwt_audience": ("Identity and rate limits", "The `aud` claim a JWT must carry."),
    "jwt_issuer": ("Identity and rate limits", "The `iss` claim a JWT must carry."),
    "allow_anonymous": (
        "Identity and rate limits",
        "With authentication configured, let calls without a token through (limited by address).",
    ),
    "rate_limits": (
        "Identity and rate limits",
        "Rules separated by `;`, each `LIMIT [ENDPOINT_GLOB] [per=identity|address|global]"
        " [cost=N]`.",
    ),
    "redis_url": (
        "Identity and rate limits",
        "`redis://` or `rediss://` storage for the rate-limit counters, shared by every replica"
        " (needs `falproxy[redis]`). Unset: in memory, per process.",
    ),
    "rate_limit_fail_open": (
        "Identity and rate limits",
        "When Redis fails: admit calls (`true`) or refuse them with 503 (`false`).",
    ),
    "per_worker_limits": (
        "Identity and rate limits",
        "Accept in-memory limits (`FALPROXY_RATE_LIMIT`, `FALPROXY_WS_MESSAGE_RATE`,"
        " `FALPROXY_WS_MAX_SOCKETS`) counted per worker with `--workers` above 1; otherwise"
        " such a start is refused unless `FALPROXY_REDIS_URL` is set.",
    ),
    "ipv6_prefix": (
        "Identity and rate limits",
        "Anonymous IPv6 callers share one rate-limit budget per network of this prefix length.",
    ),
    "trusted_proxies": (
        "Identity and rate limits",
        "Comma list of IPs/CIDRs whose `X-Forwarded-For` is believed.",
    ),
    "cors_origins": (
        "Browsers",
        "Origins (`scheme://host[:port]`, or `*`) allowed to call the proxy from another origin.",
    ),
    "access_log_format": (
        "Logs and metrics",
        "Deprecated alias of `FALPROXY_LOG_FORMAT` (a warning says so at start-up).",
    ),
    "log_format": (
        "Logs and metrics",
        "One format for every line falproxy and uvicorn print: `text` or `json` (one JSON"
        " object per line).",
    ),
    "metrics": ("Logs and metrics", "Serve Prometheus metrics."),
    "health_path": ("Logs and metrics", "Path of the liveness endpoint."),
    "ready_path": ("Logs and metrics", "Path of the readiness endpoint."),
    "metrics_path": ("Logs and metrics", "Path of the Prometheus endpoint."),
    "metrics_token": (
        "Logs and metrics",
        "When set, the metrics endpoint requires `Authorization: Bearer <token>` (401 otherwise).",
    ),
    "authenticate": ("Hooks (code only)", "`async (RequestContext) -> Identity | None`."),
    "before_request": ("Hooks (code only)", "`async (RequestContext) -> Reply | None`."),
    "resolve_key": ("Hooks (code only)", "`async (RequestContext) -> FalCredential | None`."),
    "on_event": ("Hooks (code only)", "`async (ProxyEvent) -> None`."),
    "request_ownership": (
        "Ownership and budgets",
        "`auto` (on when authentication is configured), `on` or `off`. While on, a queued"
        " request's status, stream, logs, result and cancel are served to the identity that"
        " submitted it only; others, and ids the proxy never recorded, get 404. Anonymous"
        " callers share the owner `anonymous`. See [Budgets and ownership](../budgets.md).",
    ),
    "request_ttl": (
        "Ownership and budgets",
        "Seconds a submitted request's record (owner, held estimate) is kept, in memory or"
        " Redis; at least 60. A read after it expires is 404 while ownership is on.",
    ),
    "spend_limits": (
        "Ownership and budgets",
        "Spend budgets in USD, separated by `;`, each `AMOUNT/PERIOD [ENDPOINT_GLOB]"
        " [per=identity|address|global]`, periods `hour`, `day`, `week`, `month` (fixed UTC"
        " windows). A spent rule refuses new work for its apps with 402.",
    ),
    "prices_file": (
        "Ownership and budgets",
        "A `.json` or `.toml` file mapping endpoint globs to USD per billable unit, e.g."
        ' `{"fal-ai/flux/**": 0.04}`; the first matching glob wins, and the file wins over'
        " fal's pricing API. An unreadable or malformed file stops start-up.",
    ),
    "spend_allow_unpriced": (
        "Ownership and budgets",
        "Admit budgeted calls whose unit price is unknown (no file entry, pricing API"
        " unreachable or silent) instead of refusing them with 402: they pass while their"
        " rules have room, and are charged nothing.",
    ),
}
SECTIONS = (
    "Key and routing",
    "Allow-lists",
    "Limits and timeouts",
    "WebSocket relay",
    "Identity and rate limits",
    "Ownership and budgets",
    "Browsers",
    "Logs and metrics",
    "Hooks (code only)",
)
# Variables read outside the settings table: the key, and the file's own path.
EXTRA_VARIABLES = {"credential": "`FAL_KEY`"}
FILE_ALIASES = {"credential": "`credential` or `fal_key`"}
HEADER = """\
<!-- Generated by scripts/gen_config_reference.py from falproxy.config.settings; do not edit.
     tests/unit/test_docs.py fails when this file is out of date. -->
# Settings reference

Every setting of `ProxyConfig`: its environment variable, its field name (which is also its
key in a TOML file given with `--config FILE` or `FALPROXY_CONFIG=FILE`), and its default.
Hooks are Python callables, so they are set in code only. Flags override the
environment, which overrides the file. Lists are comma-separated in the environment and may be
TOML arrays in the file; booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
How the settings work together: [Configuration](../configuration.md).

An unknown `FALPROXY_*` variable or file key stops start-up with a suggestion
(`unknown variable FALPROXY_BODY_TIMOUT: did you mean FALPROXY_BODY_TIMEOUT?`), and every
error names the variable, flag or file key you wrote.

Settings marked *pending* are declared and validated but their behaviour is still being built
in the named issue: setting them changes nothing yet.
"""


@dataclass(frozen=True, slots=True)
class Setting:
    """One row of the reference."""

    field: str
    variable: str | None  # None: set in code or a file only
    default: object


def read_settings() -> list[Setting]:
    """The settings table (``falproxy.config.SETTINGS``), in declaration order."""
    sys.path.insert(0, str(ROOT))
    from falproxy.config import SETTINGS

    return [Setting(row.name, row.env, row.default) for row in SETTINGS]


def _default(value: object) -> str:
    if value is None or value == () or value == {}:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, int) and value >= 1024 * 1024 and value % (1024 * 1024) == 0:
        return f"`{value}` ({value // (1024 * 1024)} MiB)"
    if isinstance(value, tuple):
        return "<br>".join(f"`{item}`" for item in value)
    return f"`{value}`"


def _long_default(row: Setting) -> bool:
    """Defaults too long for a table cell are listed under the tables instead."""
    return isinstance(row.default, tuple) and len(row.default) > 2


def render(rows: list[Setting]) -> str:
    """The Markdown page; ValueError names any setting with no meaning written here."""
    missing = [row.field for row in rows if MEANINGS.get(row.field, ("",))[0] not in SECTIONS]
    if missing:
        raise ValueError(f"no meaning in scripts/gen_config_reference.py for: {missing}")
    lines = [HEADER]
    for section in SECTIONS:
        lines += [f"## {section}", ""]
        lines += ["| variable | field (file key) | default | meaning |", "|---|---|---|---|"]
        for row in rows:
            if MEANINGS[row.field][0] != section:
                continue
            variable = EXTRA_VARIABLES.get(row.field) or (
                f"`{row.variable}`" if row.variable else "(code only)"
            )
            key = FILE_ALIASES.get(row.field, f"`{row.field}`")
            meaning = MEANINGS[row.field][1].replace("|", "\\|")
            if row.field in PENDING:
                meaning = f"*Pending ({PENDING[row.field]}).* {meaning}"
            default = (
                f"[listed below](#default-{row.field})"
                if _long_default(row)
                else _default(row.default)
            )
            lines.append(f"| {variable} | {key} | {default} | {meaning} |")
        lines.append("")
    for row in rows:
        if _long_default(row):
            assert isinstance(row.default, tuple)
            lines += [f"## Default: {row.field}", "", "```text", *row.default, "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render(read_settings())
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date: run scripts/gen_config_reference.py")
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
