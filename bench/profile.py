#!/usr/bin/env python3
"""Profile falproxy's hot path with py-spy while wrk drives it; print the top entries.

Usage (from the repository, root needed for py-spy to attach):

    .venv/bin/python bench/profile.py                     # falproxy serve, GET 32 conns, 10 s
    .venv/bin/python bench/profile.py --server asgi       # the ASGI front end instead
    .venv/bin/python bench/profile.py --kind post --seconds 15 --top 25

The same set-up as bench/run.py, reduced to one proxy: the nginx stub on core 1, falproxy
pinned to core 0, wrk on core 1. py-spy samples the proxy at 200 Hz (``--nonblocking``,
so the proxy is never paused) in raw (collapsed-stack) form; this script then ranks
functions by their share of samples, inclusive (the function or anything it called) and
self (the function itself). Everything binds 127.0.0.1 and every process started is
stopped by its pid.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness as h
from run import STATUS_PATH, SUBMIT_PATH, nginx_conf, post_body, start_falproxy, status_json

RATE_HZ = 200


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", choices=["native", "asgi"], default="native")
    parser.add_argument("--kind", choices=["get", "post"], default="get")
    parser.add_argument("--conns", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--native",
        action="store_true",
        help="sample C frames too (py-spy --native, which pauses the proxy at each sample): "
        "the compiled hot path shows up by name",
    )
    args = parser.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(pyspy).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    h.ensure_system_tools()
    procs = h.Processes()
    with tempfile.TemporaryDirectory(prefix="falproxy-profile-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            samples = profile(args, procs, tmp, pyspy)
        finally:
            procs.stop_all()
    print(render(samples, args))
    return 0


def profile(args: argparse.Namespace, procs: h.Processes, tmp: Path, pyspy: str) -> Path:
    stub_port, proxy_port = h.free_port(), h.free_port()
    conf = nginx_conf(
        tmp,
        "stub",
        f"""
  server {{ listen 127.0.0.1:{stub_port} backlog=8192;
    location / {{ default_type application/json; return 200 '{status_json()}'; }} }}""",
    )
    procs.start(h.LOAD_CORE, ["nginx", "-c", str(conf)], log_path=tmp / "stub.log")
    # run.start_falproxy reads its own port under "falproxy" (native) or "falproxy_asgi";
    # fal.run calls are not made here, so they map to the same stub.
    name = "falproxy" if args.server == "native" else f"falproxy_{args.server}"
    ports = {name: proxy_port, "stub": stub_port, "pystub": stub_port}
    (tmp / "logs").mkdir(exist_ok=True)
    proxy = start_falproxy(procs, ports, 1, h.PROXY_CORE, tmp / "logs", server=args.server)
    path = STATUS_PATH if args.kind == "get" else SUBMIT_PATH
    headers = {"x-fal-target-url": f"https://queue.fal.run{path}"}
    script = None
    if args.kind == "post":
        headers["content-type"] = "application/json"
        script = tmp / "post.lua"
        script.write_text(f"wrk.method = 'POST'\nwrk.body = '{post_body()}'\n")
    url = f"http://127.0.0.1:{proxy_port}/api/fal/proxy"
    h.wait_http(url, {"x-fal-target-url": f"https://queue.fal.run{STATUS_PATH}"})
    h.wrk(url, conns=args.conns, seconds=1, headers=headers, script=script)  # warm-up
    out = tmp / "profile.txt"
    recorder = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(proxy.pid),
            "--rate",
            str(RATE_HZ),
            "--format",
            "raw",
            # --native samples C stacks, which py-spy can only read from a paused process.
            *(["--native"] if args.native else ["--nonblocking"]),
            "--duration",
            str(round(args.seconds)),
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        result = h.wrk(url, conns=args.conns, seconds=args.seconds, headers=headers, script=script)
    finally:
        recorder.wait(timeout=args.seconds + 60)
    h.log(f"{result.rps:.0f} req/s, {result.errors} errors while profiling")
    kept = Path(tempfile.gettempdir()) / f"falproxy-profile-{args.server}-{args.kind}.txt"
    shutil.copy(out, kept)
    h.log(f"raw profile kept at {kept}")
    return kept


def render(samples_file: Path, args: argparse.Namespace) -> str:
    """The top functions by inclusive and by self share of all samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in samples_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [
        f"py-spy, falproxy serve --server {args.server}, {args.kind.upper()} at {args.conns} "
        f"connections, {args.seconds:g} s at {RATE_HZ} Hz: {total} samples",
        "",
        "| inclusive | function |",
        "|---|---|",
        *(f"| {n / total:.1%} | `{f}` |" for f, n in inclusive.most_common(args.top)),
        "",
        "| self | function |",
        "|---|---|",
        *(f"| {n / total:.1%} | `{f}` |" for f, n in own.most_common(args.top)),
    ]
    return "\n".join(lines)


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` as ``func (module.py)``: lines differ, functions do not."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    parts = Path(file).parts
    shown = "/".join(parts[-2:]) if "falproxy" in parts else Path(file).name
    return f"{name} ({shown})"


if __name__ == "__main__":
    raise SystemExit(main())
