#!/usr/bin/env python3
"""falproxy benchmark: falproxy vs straight-to-upstream vs nginx proxy_pass vs the Node proxy.

Usage (from the repository, with falproxy installed, e.g. after ./scripts/test):

    .venv/bin/python bench/run.py                 # full run, 5-8 minutes, writes bench/results.md
    .venv/bin/python bench/run.py --quick         # ~1.5 minutes: 2 s runs, 1 repeat, 1,000 streams, 256 MiB
    .venv/bin/python bench/run.py --duration 3 --runs 3 --streams 2000 --big-mb 256 --out /tmp/r.md

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
with upstream keep-alive, so it shows what a C proxy costs.

Every throughput figure is the median of --runs runs of --duration seconds, the proxies
interleaved within each repeat so that the machine's load hits all of them alike; ratios
against the Node proxy and nginx in the same run are what to compare over time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import probes
import report

HERE = Path(__file__).resolve().parent
FAL_KEY = "bench-key-id:bench-key-secret"
REQUEST_ID = "7f3c9a52-1d4e-4b8a-9c61-2e5f8d0b4a17"
STATUS_PATH = f"/fal-ai/flux/requests/{REQUEST_ID}/status"
SUBMIT_PATH = "/fal-ai/flux/dev"
SSE_EVENTS = 10
SSE_INTERVAL = 0.02


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
    ports = {name: h.free_port() for name in ("stub", "pystub", "nginx", "falproxy", "node")}
    big = tmp / "big.bin"
    with open(big, "wb") as f:
        f.truncate(args.big_mb << 20)  # sparse: costs no disk
    stub = nginx_conf(
        tmp,
        "stub",
        f"""
  server {{ listen 127.0.0.1:{ports["stub"]} backlog=8192;
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
    running["falproxy"] = start_falproxy(procs, ports, 1, h.PROXY_CORE, logs)
    env = dict(
        os.environ,
        FAL_KEY=FAL_KEY,
        NODE_PATH=str(modules),
        BENCH_REWRITES=json.dumps(
            {
                "https://queue.fal.run": f"http://127.0.0.1:{ports['stub']}/queue",
                "https://fal.run": f"http://127.0.0.1:{ports['pystub']}",
            }
        ),
    )
    running["node"] = procs.start(
        h.PROXY_CORE,
        [
            "node",
            "-r",
            str(HERE / "node_preload.js"),
            str(HERE / "node_proxy.js"),
            str(ports["node"]),
        ],
        env=env,
        log_path=logs / "node.log",
    )
    for target in targets(ports).values():
        h.wait_http(f"http://127.0.0.1:{target['port']}{target['get'][0]}", target["get"][1])
    return running


def start_falproxy(
    procs: h.Processes, ports: dict[str, int], workers: int, cores: str, logs: Path
) -> Any:
    env = dict(os.environ, FAL_KEY=FAL_KEY)
    argv = [
        sys.executable,
        "-m",
        "falproxy.standalone.cli",
        "serve",
        "--port",
        str(ports["falproxy"]),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--upstream",
        f"queue.fal.run=http://127.0.0.1:{ports['stub']}/queue",
        "--upstream",
        f"fal.run=http://127.0.0.1:{ports['pystub']}",
    ]
    return procs.start(cores, argv, env=env, log_path=logs / "falproxy.log")


def targets(ports: dict[str, int]) -> dict[str, dict[str, Any]]:
    """For each system: port, and (path, headers) per kind of call."""
    sse_query = f"?n={SSE_EVENTS}&interval={SSE_INTERVAL}"
    json_h = {"Content-Type": "application/json"}

    def direct(port: int, sse_port: int) -> dict[str, Any]:
        return {
            "port": port,
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
            "sse_port": port,
            "get": t(f"https://queue.fal.run{STATUS_PATH}"),
            "post": t(f"https://queue.fal.run{SUBMIT_PATH}", json_h),
            "sse": t(f"https://fal.run/fal-ai/bench/sse{sse_query}"),
            "hold": t("https://fal.run/fal-ai/bench/hold"),
            "big": t("https://queue.fal.run/bench/big"),
            "ws": f"ws://127.0.0.1:{port}{route}?fal_target_url={ws_target}",
        }

    return {
        "straight": direct(ports["stub"], ports["pystub"]),
        "falproxy": fal(ports["falproxy"]),
        "nginx": direct(ports["nginx"], ports["nginx"]),
        "node": fal(ports["node"]),
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
    args.out.write_text(report.render(results, info))
    h.log(f"wrote {args.out} in {results['seconds']:.0f} s")
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
    pids = {name: [running[name].pid] for name in ("falproxy", "nginx", "node")}
    post_lua = tmp / "post.lua"
    post_lua.write_text(f"wrk.method = 'POST'\nwrk.body = '{post_body()}'\n")
    results["idle_rss_kb"] = {name: h.rss_kb(p) for name, p in pids.items()}

    scenarios = [
        ("get32", "get", 32, None),
        ("post1k", "post", 32, post_lua),
        ("get256", "get", 256, None),
    ]
    results["wrk"] = {}
    results["load_rss_kb"] = {}
    for key, kind, conns, script in scenarios:
        runs: dict[str, list[h.WrkResult]] = {name: [] for name in tg}
        for t in tg.values():  # warm-up: connections, pools, JITs
            path, headers = t[kind]
            h.wrk(
                f"http://127.0.0.1:{t['port']}{path}",
                conns=conns,
                seconds=1,
                headers=headers,
                script=script,
            )
        for repeat in range(args.runs):
            for name, t in tg.items():
                path, headers = t[kind]
                sampler = h.RssSampler(pids.get(name, []))
                cpu_before = h.cpu_seconds(pids.get(name, []))
                with sampler:
                    result = h.wrk(
                        f"http://127.0.0.1:{t['port']}{path}",
                        conns=conns,
                        seconds=args.duration,
                        headers=headers,
                        script=script,
                    )
                result.cpu_seconds = h.cpu_seconds(pids.get(name, [])) - cpu_before
                runs[name].append(result)
                if key == "get256" and name in pids:
                    results["load_rss_kb"][name] = max(
                        results["load_rss_kb"].get(name, 0), sampler.peak
                    )
                h.log(
                    f"{key} #{repeat + 1} {name}: {result.rps:.0f} req/s p99 {result.p99_ms:.1f} ms errors {result.errors}"
                )
        results["wrk"][key] = {name: _summary(h.median_result(r)) for name, r in runs.items()}

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
    for name in ("falproxy", "node"):
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
