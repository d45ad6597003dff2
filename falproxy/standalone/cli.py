"""The ``falproxy`` command: ``serve``, ``fake``, ``check`` and ``usage``.

Flags are turned into the same ``FALPROXY_*`` variables that :meth:`ProxyConfig.from_env`
reads, so flags override the environment and every uvicorn worker sees one configuration.
Bad configuration exits with status 2 and one line on stderr; a port that cannot be bound
exits 3 with one line naming it, before anything claims to be serving.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import logging.config
import math
import os
import socket
import sys
from collections.abc import Sequence

import falproxy.relay.call
from falproxy._version import __version__
from falproxy.asgi.app import FalProxy
from falproxy.config.file import CONFIG_FILE_ENV, load_with_warnings
from falproxy.config.settings import NO_KEY_MESSAGE, ProxyConfig, parse_upstreams
from falproxy.core.errors import ConfigError, InvalidSetting
from falproxy.core.hosts import LOOPBACK_HOSTS, is_loopback_bind
from falproxy.ops.logs import (
    FIELDS_ATTRIBUTE,
    JsonFormatter,
    json_logs,
    log_config,
)
from falproxy.ops.shutdown import exit_zero_on_sigterm
from falproxy.ops.workers import check_worker_limits, shared_metrics
from falproxy.standalone.capacity import check_cap
from falproxy.standalone.server import FAKE_BASE_ENV, FAKE_SPEED_ENV, build_app

LOOPBACK = "127.0.0.1"
ALLOWED_HOSTS_ENV = "FALPROXY_ALLOWED_HOSTS"
FAKE_MODE_NOTE = (
    "FAKE MODE: every fal call is answered by a fake fal, not by fal.ai; FAL_KEY is never sent"
)
# The uvicorn HTTP protocols `falproxy serve` runs (import strings: workers import them):
# uvicorn's httptools protocol with the head guarded (--server asgi), or the native one.
GUARDED_HTTP = "falproxy.standalone.protocols:GuardedHTTPProtocol"
NATIVE_HTTP = "falproxy.standalone.native:NativeHttpProtocol"
HTTP_PROTOCOLS = {"asgi": GUARDED_HTTP, "native": NATIVE_HTTP}
SERVER_ENV = "FALPROXY_SERVER"
# Exit status when the server cannot start (the port cannot be bound, the app failed to
# load): uvicorn's own STARTUP_FAILURE, kept so supervisors see the same number as before.
BIND_FAILURE = 3
LISTEN_BACKLOG = 2048  # uvicorn's default backlog, which it sets again on this socket


def build_kind() -> str:
    """How this install runs its hot path: compiled by setup.py, or interpreted."""
    compiled = not falproxy.relay.call.__file__.endswith(".py")
    return "hot path compiled with mypyc" if compiled else "pure Python"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="falproxy", description="Server-side proxy for fal.ai")
    version = f"falproxy {__version__} ({build_kind()})"
    root.add_argument("--version", action="version", version=version)
    commands = root.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the proxy")
    serve.add_argument("--host", default=LOOPBACK, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--route", help="proxy route (default /api/fal/proxy)")
    serve.add_argument("--config", metavar="FILE", help="TOML settings (environment overrides)")
    serve.add_argument(
        "--fake",
        nargs="?",
        const="always",
        choices=["always", "auto"],
        help="serve the built-in fake fal: always, or 'auto' when no FAL_KEY is set",
    )
    serve.add_argument("--fake-speed", type=float, help="fake delays multiplier (default 1)")
    serve.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST=BASE_URL",
        help="send a fal host's calls to another base URL (repeatable)",
    )
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument(
        "--server",
        choices=sorted(HTTP_PROTOCOLS),
        help="HTTP front end: native (default, parsed with llhttp) or asgi (uvicorn's)",
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )

    fake = commands.add_parser("fake", help="run the fake fal upstream alone")
    fake.add_argument("--host", default=LOOPBACK)
    fake.add_argument("--port", type=int, default=9000)
    fake.add_argument("--speed", type=float, default=1.0, help="delays multiplier")
    fake.add_argument("--expected-key", help="accept only this key (default: any key)")

    check_command = commands.add_parser("check", help="validate and print the config, key masked")
    check_command.add_argument("--config", metavar="FILE", help="TOML settings file")

    usage = commands.add_parser("usage", help="spend per caller and app, from Redis")
    usage.add_argument("--config", metavar="FILE", help="TOML settings file")
    usage.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "fake":
            return run_fake_command(args)
        if args.command == "usage":
            return usage_command(args.config, as_json=args.json)
        return check(args.config)
    except ConfigError as exc:
        _print_error(str(exc))
        return 2


def _print_error(message: str) -> None:
    """The one line of a start-up error, as JSON when the environment asks for JSON logs."""
    if _env_log_format() == "json":  # still one line a log shipper reads
        record = logging.makeLogRecord(
            {"name": "falproxy", "levelno": logging.ERROR, "levelname": "ERROR"}
        )
        record.msg = f"error: {message}"
        print(JsonFormatter().format(record), file=sys.stderr, flush=True)
    else:
        print(f"falproxy: error: {message}", file=sys.stderr, flush=True)


def serve(args: argparse.Namespace) -> int:
    # Lines printed while the settings load already follow the format the environment
    # asks for; the final format (a config file may set it) is applied once they load.
    logging.config.dictConfig(log_config(args.log_level, _env_log_format()))
    listener = bind_listener(args.host, args.port)
    if listener is None:
        return BIND_FAILURE
    with listener:
        args.port = listener.getsockname()[1]  # --port 0: the port the system chose
        config = apply_serve_flags(args, os.environ)
        logging_config = log_config(args.log_level, "json" if json_logs(config) else "text")
        logging.config.dictConfig(logging_config)
        # Fake mode comes from the command line or FALPROXY_FAKE_URL, never from FAKE_BASE_ENV
        # alone (a leftover value is ignored by the workers): see server.py.
        announce(args, config, fake=args.use_fake or config.fake_url is not None)
        factory = "fake_app_from_env" if args.use_fake else "app_from_env"
        exit_zero_on_sigterm()
        with shared_metrics(args.workers, os.environ):
            return _run_uvicorn(args, config, factory, logging_config, listener)


def bind_listener(host: str, port: int) -> socket.socket | None:
    """The listening socket, bound before anything announces it; None after one error line.

    Binding here, in the parent, means a port in use is reported first, naming the
    address, and nothing has claimed to be serving; the workers inherit this socket.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(LISTEN_BACKLOG)  # calls made while workers start wait, not refused
    except OSError as exc:
        sock.close()
        shown = f"[{host}]" if ":" in host else host
        reason = (exc.strerror or str(exc)).lower()
        _print_error(f"cannot listen on {shown}:{port}: {reason}")
        return None
    sock.set_inheritable(True)
    return sock


def _run_uvicorn(
    args: argparse.Namespace,
    config: ProxyConfig,
    factory: str,
    logging_config: dict[str, object],
    listener: socket.socket,
) -> int:
    """uvicorn serving on ``listener``: in this process, or in ``--workers`` processes."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = uvicorn.Config(
        f"falproxy.standalone.server:{factory}",
        factory=True,
        workers=args.workers,
        log_config=logging_config,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=math.ceil(config.shutdown_grace),
        proxy_headers=False,  # X-Forwarded-For is trusted only per FALPROXY_TRUSTED_PROXIES
        # Both cap request heads in bytes and time (FALPROXY_HEADER_TIMEOUT).
        http=HTTP_PROTOCOLS[config.server],
    )
    if args.workers > 1:
        Multiprocess(settings, sockets=[listener]).run()
        return 0
    server = uvicorn.Server(settings)
    server.run(sockets=[listener])
    return 0 if server.started else BIND_FAILURE


def _env_log_format() -> str:
    """The log format the environment asks for, before the settings are loaded."""
    names = ("FALPROXY_LOG_FORMAT", "FALPROXY_ACCESS_LOG_FORMAT")
    return "json" if any(os.environ.get(name) == "json" for name in names) else "text"


def announce(args: argparse.Namespace, config: ProxyConfig, *, fake: bool) -> None:
    """The one start-up line: where the proxy answers, against what, and what it allows."""
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}{config.route}"
    endpoints = ", ".join(config.allowed_endpoints) or "any app (no FALPROXY_ALLOWED_ENDPOINTS)"
    mode = FAKE_MODE_NOTE if fake else "mode fal (calls go to fal.ai with the server's key)"
    fields = {
        "url": url,
        "route": config.route,
        "mode": "FAKE" if fake else "fal",
        "allowed_endpoints": list(config.allowed_endpoints),
        "allowed_urls": list(config.allowed_urls),
        "workers": args.workers,
    }
    logging.getLogger("falproxy").info(
        "serving %s; %s; allowed endpoints: %s; %d worker(s)",
        url,
        mode,
        endpoints,
        args.workers,
        extra={FIELDS_ATTRIBUTE: fields},
    )


def apply_serve_flags(
    args: argparse.Namespace, env: os._Environ[str] | dict[str, str]
) -> ProxyConfig:
    """Write the flags into ``env`` and fail early, in the parent, on bad configuration."""
    if args.config:
        env[CONFIG_FILE_ENV] = os.path.abspath(args.config)
    if args.route:
        _check_flag("--route", route=args.route)
        env["FALPROXY_ROUTE"] = args.route
    if args.upstream:
        mapping = parse_upstreams("--upstream", args.upstream)
        _check_flag("--upstream", upstreams=mapping)
        env["FALPROXY_UPSTREAMS"] = ",".join(f"{h}={b}" for h, b in mapping.items())
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if getattr(args, "server", None):
        env[SERVER_ENV] = args.server
    # Warnings are logged by the workers, once each, when they load the same settings.
    config, _ = load_with_warnings(env)
    check_worker_limits(config, args.workers)
    problem = check_cap(config.max_connections)
    if problem is not None:
        raise ConfigError(problem)
    if not config.allowed_hosts and is_loopback_bind(args.host):
        # Bound to loopback, only this machine's names are answered: a page that rebinds
        # its own name to 127.0.0.1 cannot drive the proxy (core/hosts.py).
        env[ALLOWED_HOSTS_ENV] = ",".join(LOOPBACK_HOSTS)
        config = dataclasses.replace(config, allowed_hosts=LOOPBACK_HOSTS)
    no_key = config.credential is None and config.fake_url is None
    use_fake = args.fake == "always" or (args.fake == "auto" and no_key)
    args.use_fake = use_fake
    if use_fake:
        _prepare_fake(args, env)
    elif no_key:
        raise ConfigError(NO_KEY_MESSAGE)
    fake_base = env.get(FAKE_BASE_ENV) if use_fake else None
    speed = float(env.get(FAKE_SPEED_ENV) or 1.0)
    build_app(config, fake_base=fake_base, fake_speed=speed)
    return config


def _check_flag(flag: str, **setting: object) -> None:
    """Validate a flag's value before it becomes a variable, so the error names the flag."""
    try:
        ProxyConfig(**setting)  # type: ignore[arg-type]
    except InvalidSetting as exc:
        raise ConfigError(exc.label(dict.fromkeys(setting, flag))) from None


def _prepare_fake(args: argparse.Namespace, env: os._Environ[str] | dict[str, str]) -> None:
    if args.workers != 1:
        raise ConfigError("--fake keeps its state in one process: use --workers 1")
    if args.port == 0:
        args.port = _free_port(args.host)
    call_host = LOOPBACK if args.host in ("0.0.0.0", "::", "") else args.host
    if ":" in call_host:
        call_host = f"[{call_host}]"
    env[FAKE_BASE_ENV] = f"http://{call_host}:{args.port}"
    if args.fake_speed is not None:
        env[FAKE_SPEED_ENV] = str(args.fake_speed)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def run_fake_command(args: argparse.Namespace) -> int:
    from falproxy.fake import run_fake

    run_fake(args.host, args.port, speed=args.speed, expected_key=args.expected_key)
    return 0


def check(config_file: str | None = None) -> int:
    """Print the effective configuration as JSON, secrets masked; 1 when no key is set."""
    env = dict(os.environ)
    if config_file:
        env[CONFIG_FILE_ENV] = config_file
    config, warnings = load_with_warnings(env)
    report: dict[str, object] = {"config": config.describe()}
    usable = config.credential is not None or config.fake_url is not None
    if not usable:
        report["warnings"] = [*warnings, NO_KEY_MESSAGE]
    else:
        report["warnings"] = [*warnings, *FalProxy(config).startup_warnings()]
    print(json.dumps(report, indent=2))
    return 0 if usable else 1


def usage_command(config_file: str | None, *, as_json: bool) -> int:
    """Print who spent what in the current windows (standalone/usage.py)."""
    from falproxy.standalone.usage import usage_report

    env = dict(os.environ)
    if config_file:
        env[CONFIG_FILE_ENV] = config_file
    config, _ = load_with_warnings(env)
    report = usage_report(config.redis_url)
    print(report.as_json() if as_json else report.as_text())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
