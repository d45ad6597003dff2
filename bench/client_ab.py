"""A/B of falproxy's upstream client: two checkouts of falproxy side by side, same run.

Only the falproxy rows of bench/run.py (GET status poll at 32 and 256 connections, POST
1 KB at 32), against the same nginx stub, plain and behind TLS (a test CA made at run
time, trusted through SSL_CERT_FILE, which both the aiohttp and the lean client honour).
Each checkout runs as ``falproxy serve`` from its own source folder (PYTHONPATH), pinned
to the proxy core; the A and B runs are interleaved within each repeat so the machine's
load hits both alike. Reports req/s, p99 and requests per CPU-second of the proxy.

Run: ``python bench/client_ab.py --a /path/to/checkout-A --b /path/to/checkout-B``
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
import run
import tls


def start_falproxy(
    procs: h.Processes, source: Path, port: int, queue: str, logs: Path, ca: Path | None
) -> None:
    env = dict(os.environ, FAL_KEY=run.FAL_KEY, PYTHONPATH=str(source))
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    # -P: the current folder is not put on sys.path, so PYTHONPATH alone picks the checkout.
    argv = [sys.executable, "-P", "-m", "falproxy.standalone.cli", "serve", "--port", str(port)]
    argv += ["--log-level", "warning", "--upstream", f"queue.fal.run={queue}"]
    procs.start(h.PROXY_CORE, argv, env=env, log_path=logs / f"falproxy-{port}.log")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", type=Path, required=True, help="checkout A (before)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (after)")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    h.ensure_system_tools()
    h.raise_fd_limit()
    procs = h.Processes()
    try:
        with tempfile.TemporaryDirectory(prefix="falproxy-ab-") as name:
            tmp = Path(name)
            report(measure(args, procs, tmp), args)
    finally:
        procs.stop_all()
    return 0


def measure(args: argparse.Namespace, procs: h.Processes, tmp: Path) -> dict[str, list]:
    pki = tls.make_test_pki(tmp / "pki")
    plain, secure = h.free_port(), h.free_port()
    stub = run.nginx_conf(
        tmp,
        "stub",
        f"""
  server {{ listen 127.0.0.1:{plain} backlog=8192;
    listen 127.0.0.1:{secure} ssl backlog=8192;
    ssl_certificate {pki.cert}; ssl_certificate_key {pki.key};
    location / {{ default_type application/json; return 200 '{run.status_json()}'; }} }}""",
    )
    logs = tmp / "logs"
    logs.mkdir()
    procs.start(h.LOAD_CORE, ["nginx", "-c", str(stub)], log_path=logs / "stub.log")
    systems: list[tuple[str, str, int]] = []
    for label, source in (("A", args.a), ("B", args.b)):
        for mode, queue, ca in (
            ("plain", f"http://127.0.0.1:{plain}/queue", None),
            ("tls", f"https://127.0.0.1:{secure}/queue", pki.ca),
        ):
            port = h.free_port()
            start_falproxy(procs, source, port, queue, logs, ca)
            systems.append((label, mode, port))
    route = "/api/fal/proxy"
    get = {"x-fal-target-url": f"https://queue.fal.run{run.STATUS_PATH}"}
    post = {
        "x-fal-target-url": f"https://queue.fal.run{run.SUBMIT_PATH}",
        "Content-Type": "application/json",
    }
    for _, _, port in systems:
        h.wait_http(f"http://127.0.0.1:{port}{route}", get, context=ssl.create_default_context())
    post_lua = tmp / "post.lua"
    post_lua.write_text(f"wrk.method = 'POST'\nwrk.body = '{run.post_body()}'\n")
    pids = {port: _pid_on(procs, i) for i, (_, _, port) in enumerate(systems, start=1)}
    scenarios = [
        ("get32", get, 32, None),
        ("post1k", post, 32, post_lua),
        ("get256", get, 256, None),
    ]
    rows: dict[str, list] = {}
    for key, headers, conns, script in scenarios:
        runs: dict[tuple[str, str], list[h.WrkResult]] = {(a, m): [] for a, m, _ in systems}
        for _, _, port in systems:
            h.wrk(
                f"http://127.0.0.1:{port}{route}",
                conns=conns,
                seconds=1,
                headers=headers,
                script=script,
            )
        for repeat in range(args.runs):
            for label, mode, port in systems:
                before = h.cpu_seconds([pids[port]])
                result = h.wrk(
                    f"http://127.0.0.1:{port}{route}",
                    conns=conns,
                    seconds=args.duration,
                    headers=headers,
                    script=script,
                )
                result.cpu_seconds = h.cpu_seconds([pids[port]]) - before
                runs[label, mode].append(result)
                h.log(
                    f"{key} #{repeat + 1} {label} {mode}: {result.rps:.0f} req/s, {result.per_cpu_second:.0f} req/CPU-s, errors {result.errors}"
                )
        rows[key] = [
            (label, mode, h.median_result(runs[label, mode])) for label, mode, _ in systems
        ]
    return rows


def _pid_on(procs: h.Processes, index: int) -> int:
    return procs.started[index].pid  # 0 is the stub; then the proxies in start order


def report(rows: dict[str, list], args: argparse.Namespace) -> None:
    print(
        f"\nA = {args.a}\nB = {args.b}\n{args.runs} runs x {args.duration:.0f} s, medians; load average at end: {Path('/proc/loadavg').read_text().split()[:3]}"
    )
    print(
        "| scenario | upstream | A req/s | B req/s | B/A | A req/CPU-s | B req/CPU-s | B/A | A p99 ms | B p99 ms | errors A/B |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for key, results in rows.items():
        by = {(label, mode): r for label, mode, r in results}
        for mode in ("plain", "tls"):
            a, b = by["A", mode], by["B", mode]
            print(
                f"| {key} | {mode} | {a.rps:.0f} | {b.rps:.0f} | {b.rps / a.rps:.2f} | "
                f"{a.per_cpu_second:.0f} | {b.per_cpu_second:.0f} | {b.per_cpu_second / a.per_cpu_second:.2f} | "
                f"{a.p99_ms:.1f} | {b.p99_ms:.1f} | {a.errors}/{b.errors} |"
            )


if __name__ == "__main__":
    raise SystemExit(main())
