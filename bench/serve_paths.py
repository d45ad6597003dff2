#!/usr/bin/env python3
"""falproxy serve's two HTTP front ends side by side: native (llhttp) and asgi (uvicorn).

A short, falproxy-only companion of bench/run.py (issue 14): the same nginx stub, the
same three throughput scenarios (status poll GET at 32 and 256 connections, POST 1 KB),
plain upstream only, each front end in its own `falproxy serve` pinned to the proxy core,
the two interleaved in every repeat. Prints a markdown table: median req/s, p99 and
requests per CPU-second of the proxy.

Usage: python bench/serve_paths.py [--duration 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import run

SERVERS = ("native", "asgi")
SCENARIOS = (("get32", "get", 32), ("post1k", "post", 32), ("get256", "get", 256))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    h.raise_fd_limit()
    procs = h.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="falproxy-serve-paths-") as tmp_name:
            tmp = Path(tmp_name)
            (tmp / "logs").mkdir()
            table = measure(args, procs, tmp)
    finally:
        procs.stop_all()
    print(table)
    return 0


def measure(args: argparse.Namespace, procs: h.Processes, tmp: Path) -> str:
    ports = {name: h.free_port() for name in ("stub", "pystub", *SERVERS)}
    stub = run.nginx_conf(
        tmp,
        "stub",
        f"""
  server {{ listen 127.0.0.1:{ports["stub"]} backlog=8192;
    location / {{ default_type application/json; return 200 '{run.status_json()}'; }} }}""",
    )
    procs.start(h.LOAD_CORE, ["nginx", "-c", str(stub)], log_path=tmp / "logs" / "stub.log")
    running = {}
    for server in SERVERS:
        # start_falproxy reads its own port under "falproxy" (native) or "falproxy_asgi".
        own = dict(ports, falproxy=ports[server], falproxy_asgi=ports[server])
        running[server] = run.start_falproxy(
            procs, own, 1, h.PROXY_CORE, tmp / "logs", server=server
        )
    post_lua = tmp / "post.lua"
    post_lua.write_text(f"wrk.method = 'POST'\nwrk.body = '{run.post_body()}'\n")
    route = "/api/fal/proxy"
    calls = {
        "get": {"x-fal-target-url": f"https://queue.fal.run{run.STATUS_PATH}"},
        "post": {
            "x-fal-target-url": f"https://queue.fal.run{run.SUBMIT_PATH}",
            "Content-Type": "application/json",
        },
    }
    for server in SERVERS:
        h.wait_http(f"http://127.0.0.1:{ports[server]}{route}", calls["get"])
    rows = [
        "| scenario | front end | req/s | p99 ms | errors | req per CPU-s |",
        "|---|---|---|---|---|---|",
    ]
    for key, kind, conns in SCENARIOS:
        script = post_lua if kind == "post" else None
        results: dict[str, list[h.WrkResult]] = {server: [] for server in SERVERS}
        for server in SERVERS:  # warm-up
            url = f"http://127.0.0.1:{ports[server]}{route}"
            h.wrk(url, conns=conns, seconds=1, headers=calls[kind], script=script)
        for repeat in range(args.runs):
            for server in SERVERS:
                pids = [running[server].pid]
                before = h.cpu_seconds(pids)
                result = h.wrk(
                    f"http://127.0.0.1:{ports[server]}{route}",
                    conns=conns,
                    seconds=args.duration,
                    headers=calls[kind],
                    script=script,
                )
                result.cpu_seconds = h.cpu_seconds(pids) - before
                results[server].append(result)
                h.log(
                    f"{key} #{repeat + 1} {server}: {result.rps:.0f} req/s errors {result.errors}"
                )
        for server in SERVERS:
            m = h.median_result(results[server])
            rows.append(
                f"| {key} | {server} | {m.rps:,.0f} | {m.p99_ms:.1f} | {m.errors} "
                f"| {m.per_cpu_second:,.0f} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
