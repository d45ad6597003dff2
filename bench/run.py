#!/usr/bin/env python3
"""falproxy benchmark: falproxy vs straight-to-upstream, nginx, the Node proxy and the Python ceiling.

Usage (from the repository, with falproxy installed, e.g. after ./scripts/test):

    .venv/bin/python bench/run.py                 # full run, about 11 minutes, writes bench/results.md
    .venv/bin/python bench/run.py --quick         # ~3 minutes: 2 s runs, 1 repeat, 1,000 streams, 256 MiB
    .venv/bin/python bench/run.py --duration 3 --runs 3 --streams 2000 --big-mb 256 --out /tmp/r.md
    .venv/bin/python bench/run.py --duration 1 --runs 1 --streams 200 --big-mb 64 --out /tmp/s.md
                                                  # smoke check, ~1.5 minutes: every row runs

Self-contained: installs Debian's nginx and wrk with apt when missing, and
@fal-ai/server-proxy 1.2.1 + Express 5 from npm into --node-dir (cached). Needs root for
apt, Node 20+, taskset, and 2+ cores. Every process is pinned: the proxy under test on
core 0; wrk, the stubs and the Python probes on core 1. Everything binds 127.0.0.1 only,
every wait is bounded, and every process started is stopped by its pid at the end.

Upstream stubs: an nginx (one process) answering the status poll and POSTs with the same
394-byte JSON and serving a sparse 1 GiB file, and bench/stub.py (raw ASGI on uvicorn) for
SSE, held streams and the WebSocket echo. The Node proxy only accepts fal URLs, so every
proxy gets real fal targets: falproxy maps them with --upstream, and the Node proxy runs
with bench/node_preload.js, which rewrites its fetch() of https://queue.fal.run and
https://fal.run to the stubs. nginx proxies by path (it does not read x-fal-target-url),
with upstream keep-alive, so it shows what a C proxy costs. bench/raw_proxy.py is the
Python ceiling: the least a fal proxy can do (target checked, key injected, response relayed
as raw bytes) on uvloop + httptools, with no framework and no HTTP client library.

TLS: fal is only reachable over HTTPS, so the throughput scenarios also run against the
nginx stub behind TLS, with a test CA made at run time (bench/tls.py; nothing committed).
A second instance of every proxy is pointed at it and told to trust that CA: falproxy by
FALPROXY_UPSTREAM_CA_FILE, the Node proxy by
NODE_EXTRA_CA_CERTS, nginx by proxy_ssl_trusted_certificate (verifying the stub's name),
the raw proxy by --cafile. The SSE, held-stream, WebSocket and download probes stay on the
plain upstreams.

Every throughput figure is the median of --runs runs of --duration seconds, the proxies
interleaved within each repeat so that the machine's load hits all of them alike; ratios
against the Node proxy and nginx in the same run are what to compare over time.

--ws then runs bench/ws_frames.py (the WebSocket relay against an echo server, a raw byte
relay and nginx's WebSocket proxy_pass) and appends its table to the report.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import probes
import report
import tls

HERE = Path(__file__).resolve().parent
FAL_KEY = "bench-key-id:bench-key-secret"
REQUEST_ID = "7f3c9a52-1d4e-4b8a-9c61-2e5f8d0b4a17"
STATUS_PATH = f"/fal-ai/flux/requests/{REQUEST_ID}/status"
SUBMIT_PATH = "/fal-ai/flux/dev"
SSE_EVENTS = 10
SSE_INTERVAL = 0.02
# Each also runs a "_tls" twin. falproxy is `falproxy serve` (its default, native front
# end); falproxy_asgi is `falproxy serve --server asgi` (the ASGI app under uvicorn); fastapi
# is examples/fastapi_app.py under uvicorn: falproxy mounted in an app, as most users run it;
# flask is examples/flask_app.py under gunicorn's gthread worker, by its documented command.
PROXIES = ("falproxy", "falproxy_asgi", "fastapi", "flask", "pyraw", "nginx", "node")
FALPROXIES = ("falproxy", "falproxy_asgi", "fastapi", "flask")
REPO = HERE.parent


def status_json() -> str:
    base = f"https://queue.fal.run/fal-ai/flux/requests/{REQUEST_ID}"
    doc = {
        "status": "IN_PROGRESS",
        "request_id": REQUEST_ID,
        "response_url": base,
        "status_url": f"{base}/status",
        "cancel_url": f"{base}/cancel",
        "logs": None,
        "metrics": {},
        "queue_position": 0,
    }
    text = json.dumps(doc, separators=(",", ":"))
    return text[:-1] + ',"pad":"' + "x" * (394 - len(text) - 9) + '"}'


def post_body() -> str:
    text = '{"prompt":""}'
    return '{"prompt":"' + "a" * (1024 - len(text)) + '"}'


def nginx_conf(tmp: Path, name: str, body: str) -> Path:
    (tmp / name).mkdir(exist_ok=True)
    conf = tmp / name / "nginx.conf"
    conf.write_text(f"""
user root; daemon off; master_process off; worker_processes 1;
worker_rlimit_nofile 65536; pid {tmp / name}/nginx.pid; error_log {tmp / name}/error.log warn;
events {{ worker_connections 40000; multi_accept on; }}
http {{
  access_log off; keepalive_requests 10000000; keepalive_timeout 120;
  client_body_temp_path {tmp / name}/body; proxy_temp_path {tmp / name}/proxy;
  fastcgi_temp_path {tmp / name}/fcgi; uwsgi_temp_path {tmp / name}/uwsgi;
  scgi_temp_path {tmp / name}/scgi;
  {body}
}}
""")
    return conf


def start_all(
    args: argparse.Namespace, procs: h.Processes, tmp: Path, modules: Path
) -> dict[str, Any]:
    names = ("stub", "stub_tls", "pystub", *PROXIES, *(f"{name}_tls" for name in PROXIES))
    ports = h.free_ports(list(names))
    pki = tls.make_test_pki(tmp / "pki")
    big = tmp / "big.bin"
    with open(big, "wb") as f:
        f.truncate(args.big_mb << 20)  # sparse: costs no disk
    stub = nginx_conf(
        tmp,
        "stub",
        f"""
  server {{ listen 127.0.0.1:{ports["stub"]} backlog=8192;
    listen 127.0.0.1:{ports["stub_tls"]} ssl backlog=8192;
    ssl_certificate {pki.cert}; ssl_certificate_key {pki.key};
    location = /queue/bench/big {{ alias {big}; default_type application/octet-stream; }}
    location / {{ default_type application/json; return 200 '{status_json()}'; }} }}""",
    )
    proxy = nginx_conf(
        tmp,
        "nginx",
        f"""
  upstream stub {{ server 127.0.0.1:{ports["stub"]}; keepalive 256; }}
  upstream pystub {{ server 127.0.0.1:{ports["pystub"]}; keepalive 256; }}
  server {{ listen 127.0.0.1:{ports["nginx"]} backlog=8192;
    proxy_http_version 1.1; proxy_set_header Connection "";
    location /queue/ {{ proxy_pass http://stub; }}
    location / {{ proxy_pass http://pystub; }} }}
  upstream stub_tls {{ server 127.0.0.1:{ports["stub_tls"]}; keepalive 256; }}
  server {{ listen 127.0.0.1:{ports["nginx_tls"]} backlog=8192;
    proxy_http_version 1.1; proxy_set_header Connection "";
    proxy_ssl_verify on; proxy_ssl_trusted_certificate {pki.ca};
    proxy_ssl_name {tls.STUB_NAME}; proxy_ssl_server_name on; proxy_ssl_session_reuse on;
    location /queue/ {{ proxy_pass https://stub_tls; }}
    location / {{ proxy_pass http://pystub; }} }}""",
    )
    logs = tmp / "logs"
    logs.mkdir(exist_ok=True)
    procs.start(h.LOAD_CORE, ["nginx", "-c", str(stub)], log_path=logs / "stub.log")
    procs.start(
        h.LOAD_CORE,
        [sys.executable, str(HERE / "stub.py"), str(ports["pystub"])],
        log_path=logs / "pystub.log",
    )
    running: dict[str, Any] = {"ports": ports}
    running["nginx"] = procs.start(
        h.PROXY_CORE, ["nginx", "-c", str(proxy)], log_path=logs / "nginx.log"
    )
    running["nginx_tls"] = running["nginx"]  # one nginx, a server block per upstream
    for suffix, ca in (("", None), ("_tls", pki.ca)):
        queue = queue_base(ports, tls_upstream=ca is not None)
        pystub = f"http://127.0.0.1:{ports['pystub']}"
        running[f"falproxy{suffix}"] = start_falproxy(
            procs, ports, 1, h.PROXY_CORE, logs, tls_ca=ca
        )
        running[f"falproxy_asgi{suffix}"] = start_falproxy(
            procs, ports, 1, h.PROXY_CORE, logs, tls_ca=ca, server="asgi"
        )
        running[f"fastapi{suffix}"] = start_fastapi(procs, ports, logs, tls_ca=ca)
        running[f"flask{suffix}"] = start_flask(procs, ports, logs, tls_ca=ca)
        running[f"node{suffix}"] = start_node(
            procs, ports[f"node{suffix}"], queue, pystub, modules, logs, ca
        )
        running[f"pyraw{suffix}"] = procs.start(
            h.PROXY_CORE,
            [
                sys.executable,
                str(HERE / "raw_proxy.py"),
                str(ports[f"pyraw{suffix}"]),
                f"queue.fal.run={queue}",
                f"fal.run={pystub}",
                *(["--cafile", str(ca)] if ca else []),
            ],
            env=dict(os.environ, FAL_KEY=FAL_KEY),
            log_path=logs / f"pyraw{suffix}.log",
        )
    for target in [*targets(ports).values(), *targets(ports, tls_upstream=True).values()]:
        h.wait_http(
            f"{target['scheme']}://127.0.0.1:{target['port']}{target['get'][0]}",
            target["get"][1],
            context=ssl.create_default_context(cafile=pki.ca),
        )
    return running


def queue_base(ports: dict[str, int], *, tls_upstream: bool) -> str:
    """Where queue.fal.run calls go: the nginx stub, plain or behind TLS."""
    if tls_upstream:
        return f"https://127.0.0.1:{ports['stub_tls']}/queue"
    return f"http://127.0.0.1:{ports['stub']}/queue"


def start_node(
    procs: h.Processes,
    port: int,
    queue: str,
    pystub: str,
    modules: Path,
    logs: Path,
    ca: Path | None,
) -> Any:
    env = dict(
        os.environ,
        FAL_KEY=FAL_KEY,
        NODE_PATH=str(modules),
        BENCH_REWRITES=json.dumps(
            {
                "https://queue.fal.run": queue,
                "https://fal.run": pystub,
            }
        ),
    )
    if ca is not None:
        env["NODE_EXTRA_CA_CERTS"] = str(ca)  # added to Node's roots, fetch() included
    suffix = "_tls" if ca else ""
    return procs.start(
        h.PROXY_CORE,
        ["node", "-r", str(HERE / "node_preload.js"), str(HERE / "node_proxy.js"), str(port)],
        env=env,
        log_path=logs / f"node{suffix}.log",
    )


def falproxy_env(ports: dict[str, int], tls_ca: Path | None) -> dict[str, str]:
    """The key, and for the TLS twin the test CA as the upstream CA (verification stays on)."""
    env = dict(os.environ, FAL_KEY=FAL_KEY)
    if tls_ca is not None:
        env["FALPROXY_UPSTREAM_CA_FILE"] = str(tls_ca)
    return env


def start_falproxy(
    procs: h.Processes,
    ports: dict[str, int],
    workers: int,
    cores: str,
    logs: Path,
    tls_ca: Path | None = None,
    server: str = "native",
) -> Any:
    """`falproxy serve` on the plain stub, or with ``tls_ca`` on the TLS stub, trusting that CA."""
    name = "falproxy" if server == "native" else f"falproxy_{server}"
    suffix = "_tls" if tls_ca else ""
    argv = [
        sys.executable,
        "-m",
        "falproxy.standalone.cli",
        "serve",
        "--server",
        server,
        "--port",
        str(ports[f"{name}{suffix}"]),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--upstream",
        f"queue.fal.run={queue_base(ports, tls_upstream=tls_ca is not None)}",
        "--upstream",
        f"fal.run=http://127.0.0.1:{ports['pystub']}",
    ]
    return procs.start(
        cores, argv, env=falproxy_env(ports, tls_ca), log_path=logs / f"{name}{suffix}.log"
    )


def start_fastapi(
    procs: h.Processes, ports: dict[str, int], logs: Path, tls_ca: Path | None = None
) -> Any:
    """examples/fastapi_app.py by its documented command (`uvicorn examples.fastapi_app:app`),
    settings from the environment, on the plain or the TLS stub."""
    suffix = "_tls" if tls_ca else ""
    env = mounted_env(ports, tls_ca)
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "examples.fastapi_app:app",
        "--port",
        str(ports[f"fastapi{suffix}"]),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return procs.start(h.PROXY_CORE, argv, env=env, log_path=logs / f"fastapi{suffix}.log")


def start_flask(
    procs: h.Processes, ports: dict[str, int], logs: Path, tls_ca: Path | None = None
) -> Any:
    """examples/flask_app.py by its documented command (`gunicorn --worker-class gthread
    --threads 4 examples.flask_app:app`), one worker, settings from the environment."""
    suffix = "_tls" if tls_ca else ""
    env = mounted_env(ports, tls_ca)
    argv = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--threads", "4"]
    argv += ["--bind", f"127.0.0.1:{ports[f'flask{suffix}']}", "--log-level", "warning"]
    argv.append("examples.flask_app:app")
    return procs.start(h.PROXY_CORE, argv, env=env, log_path=logs / f"flask{suffix}.log")


def mounted_env(ports: dict[str, int], tls_ca: Path | None) -> dict[str, str]:
    """The environment of an example app: falproxy's settings, the stubs as fal, the repo."""
    env = falproxy_env(ports, tls_ca)
    queue = queue_base(ports, tls_upstream=tls_ca is not None)
    env["FALPROXY_UPSTREAMS"] = f"queue.fal.run={queue},fal.run=http://127.0.0.1:{ports['pystub']}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def targets(ports: dict[str, int], *, tls_upstream: bool = False) -> dict[str, dict[str, Any]]:
    """For each system: port, and (path, headers) per kind of call.

    With ``tls_upstream`` the same systems (same names) whose queue.fal.run calls reach
    the stub over TLS; "straight" is then wrk itself speaking TLS to the stub.
    """
    sse_query = f"?n={SSE_EVENTS}&interval={SSE_INTERVAL}"
    json_h = {"Content-Type": "application/json"}
    suffix = "_tls" if tls_upstream else ""

    def direct(port: int, sse_port: int, scheme: str = "http") -> dict[str, Any]:
        return {
            "port": port,
            "scheme": scheme,
            "sse_port": sse_port,
            "get": (f"/queue{STATUS_PATH}", {}),
            "post": (f"/queue{SUBMIT_PATH}", json_h),
            "sse": (f"/fal-ai/bench/sse{sse_query}", {}),
            "hold": ("/fal-ai/bench/hold", {}),
            "big": ("/queue/bench/big", {}),
            "ws": f"ws://127.0.0.1:{sse_port}/fal-ai/bench/realtime",
        }

    def fal(port: int) -> dict[str, Any]:
        route = "/api/fal/proxy"

        def t(url: str, extra: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
            return route, {"x-fal-target-url": url, **(extra or {})}

        ws_target = "wss://fal.run/fal-ai/bench/realtime"
        return {
            "port": port,
            "scheme": "http",
            "sse_port": port,
            "get": t(f"https://queue.fal.run{STATUS_PATH}"),
            "post": t(f"https://queue.fal.run{SUBMIT_PATH}", json_h),
            "sse": t(f"https://fal.run/fal-ai/bench/sse{sse_query}"),
            "hold": t("https://fal.run/fal-ai/bench/hold"),
            "big": t("https://queue.fal.run/bench/big"),
            "ws": f"ws://127.0.0.1:{port}{route}?fal_target_url={ws_target}",
        }

    straight = (
        direct(ports["stub_tls"], ports["pystub"], "https")
        if tls_upstream
        else direct(ports["stub"], ports["pystub"])
    )
    return {
        "straight": straight,
        **{name: fal(ports[f"{name}{suffix}"]) for name in FALPROXIES},
        "pyraw": fal(ports[f"pyraw{suffix}"]),
        "nginx": direct(ports[f"nginx{suffix}"], ports[f"nginx{suffix}"]),
        "node": fal(ports[f"node{suffix}"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds per wrk run (default 5)"
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="repeats per scenario; medians (default 3)"
    )
    parser.add_argument(
        "--streams", type=int, default=10_000, help="idle SSE streams held (default 10000)"
    )
    parser.add_argument(
        "--big-mb", type=int, default=1024, help="size of the streamed download (default 1024)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="2 s runs, 1 repeat, 1,000 streams, 256 MB"
    )
    parser.add_argument(
        "--ws",
        action="store_true",
        help="then run bench/ws_frames.py (the WebSocket relay's anchors) and append its table",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument(
        "--node-dir", type=Path, default=Path.home() / ".cache" / "falproxy-bench" / "node"
    )
    args = parser.parse_args()
    if args.quick:
        args.duration, args.runs, args.streams, args.big_mb = 2.0, 1, 1000, 256
    started = time.monotonic()
    h.ensure_system_tools()
    modules = h.ensure_node_proxy(args.node_dir)
    h.raise_fd_limit()
    info = h.machine_info()
    procs = h.Processes()
    results: dict[str, Any] = {
        "args": vars(args) | {"out": str(args.out), "node_dir": str(args.node_dir)}
    }
    try:
        with tempfile.TemporaryDirectory(prefix="falproxy-bench-") as tmp_name:
            running = start_all(args, procs, Path(tmp_name), modules)
            measure(args, running, procs, Path(tmp_name), results)
    finally:
        procs.stop_all()
    info["load average (end)"] = Path("/proc/loadavg").read_text().strip()
    results["seconds"] = time.monotonic() - started
    text = report.render(results, info)
    args.out.write_text(text)  # first: a failing WebSocket run never loses the HTTP one
    h.log(f"wrote {args.out} in {results['seconds']:.0f} s")
    if args.ws:
        h.log("WebSocket relay: bench/ws_frames.py")
        ws = subprocess.run(
            [sys.executable, str(HERE / "ws_frames.py")], capture_output=True, text=True
        )
        if ws.returncode != 0:
            h.log(f"bench/ws_frames.py failed:\n{ws.stderr[-2000:]}")
            return 1
        text += "\n## WebSocket relay (`bench/ws_frames.py`)\n\n" + ws.stdout
        args.out.write_text(text)
        h.log(f"appended the WebSocket relay table to {args.out}")
    return 0


def measure(
    args: argparse.Namespace,
    running: dict[str, Any],
    procs: h.Processes,
    tmp: Path,
    results: dict[str, Any],
) -> None:
    ports = running["ports"]
    tg = targets(ports)
    pids = {name: [running[name].pid] for name in PROXIES}
    post_lua = tmp / "post.lua"
    post_lua.write_text(f"wrk.method = 'POST'\nwrk.body = '{post_body()}'\n")
    results["idle_rss_kb"] = {name: h.rss_kb(p) for name, p in pids.items()}

    # Plain and TLS upstreams interleaved in every repeat, so load hits both alike.
    modes = {"wrk": ("", tg), "wrk_tls": ("_tls", targets(ports, tls_upstream=True))}
    systems = [(mode, name, t) for mode, (_, tgs) in modes.items() for name, t in tgs.items()]

    def proxy_pids(mode: str, name: str) -> list[int]:
        key = f"{name}{modes[mode][0]}"
        return [running[key].pid] if key in running else []

    scenarios = [
        ("get32", "get", 32, None),
        ("post1k", "post", 32, post_lua),
        ("get256", "get", 256, None),
    ]
    for mode in modes:
        results[mode] = {}
    results["load_rss_kb"] = {}
    for key, kind, conns, script in scenarios:
        runs: dict[tuple[str, str], list[h.WrkResult]] = {(m, n): [] for m, n, _ in systems}
        for _, _, t in systems:  # warm-up: connections, pools, TLS sessions, JITs
            path, headers = t[kind]
            h.wrk(
                f"{t['scheme']}://127.0.0.1:{t['port']}{path}",
                conns=conns,
                seconds=1,
                headers=headers,
                script=script,
            )
        for repeat in range(args.runs):
            for mode, name, t in systems:
                path, headers = t[kind]
                watched = proxy_pids(mode, name)
                sampler = h.RssSampler(watched)
                cpu_before = h.cpu_seconds(watched)
                with sampler:
                    result = h.wrk(
                        f"{t['scheme']}://127.0.0.1:{t['port']}{path}",
                        conns=conns,
                        seconds=args.duration,
                        headers=headers,
                        script=script,
                    )
                result.cpu_seconds = h.cpu_seconds(watched) - cpu_before
                runs[mode, name].append(result)
                if key == "get256" and mode == "wrk" and name in pids:
                    results["load_rss_kb"][name] = max(
                        results["load_rss_kb"].get(name, 0), sampler.peak
                    )
                label = f"{name} (TLS upstream)" if mode == "wrk_tls" else name
                h.log(
                    f"{key} #{repeat + 1} {label}: {result.rps:.0f} req/s p99 {result.p99_ms:.1f} ms errors {result.errors}"
                )
        for mode, (_, tgs) in modes.items():
            results[mode][key] = {name: _summary(h.median_result(runs[mode, name])) for name in tgs}

    results["sse"] = {}
    for name, t in tg.items():
        path, headers = t["sse"]
        result = probes.sse(t["sse_port"], path, headers, runs=10, events=SSE_EVENTS)
        results["sse"][name] = vars(result)
        h.log(
            f"sse {name}: first {result.first_event_ms:.2f} ms, lag max {result.lag_max_ms:.2f} ms"
        )

    results["ws"] = {}
    for name in ("straight", "falproxy"):
        t = tg[name]
        rate = probes.ws_echo(t["ws"], {}, conns=8, seconds=args.duration)
        results["ws"][name] = rate
        h.log(f"ws {name}: {rate} msg/s")

    results["hold"] = {}
    for name in ("falproxy", "falproxy_asgi", "pyraw", "node"):
        t = tg[name]
        path, headers = t["hold"]
        before = h.rss_kb(pids[name])
        opened, during = probes.hold_streams(
            t["port"], path, headers, args.streams, lambda p=pids[name]: h.rss_kb(p)
        )
        results["hold"][name] = {"opened": opened, "before_kb": before, "during_kb": during}
        h.log(f"hold {name}: {opened} streams, {before} -> {during} KiB")

    results["big"] = {}
    for name, t in tg.items():
        path, headers = t["big"]
        before = h.rss_kb(pids.get(name, []))
        sampler = h.RssSampler(pids.get(name, []))
        with sampler:
            size, seconds = probes.download(t["port"], path, headers)
        results["big"][name] = {
            "bytes": size,
            "seconds": seconds,
            "before_kb": before,
            "peak_kb": sampler.peak,
        }
        h.log(
            f"big {name}: {size >> 20} MiB in {seconds:.1f} s, rss {before} -> {sampler.peak} KiB"
        )

    results["workers"] = {}
    path, headers = tg["falproxy"]["get"]
    url = f"http://127.0.0.1:{ports['falproxy']}{path}"
    for workers, cores in ((1, h.PROXY_CORE), (2, f"{h.PROXY_CORE},{h.LOAD_CORE}")):
        procs.stop(running["falproxy"])
        running["falproxy"] = start_falproxy(procs, ports, workers, cores, tmp / "logs")
        h.wait_http(url, headers)
        h.wrk(url, conns=64, seconds=1, headers=headers)
        runs_w = []
        for _ in range(args.runs):
            cpu_before = h.cpu_seconds([running["falproxy"].pid])
            result = h.wrk(url, conns=64, seconds=args.duration, headers=headers)
            result.cpu_seconds = h.cpu_seconds([running["falproxy"].pid]) - cpu_before
            runs_w.append(result)
        results["workers"][workers] = _summary(h.median_result(runs_w))
        h.log(f"workers={workers}: {results['workers'][workers]['rps']:.0f} req/s")


def _summary(result: h.WrkResult) -> dict[str, float]:
    return vars(result) | {"per_cpu_second": result.per_cpu_second}


if __name__ == "__main__":
    raise SystemExit(main())
