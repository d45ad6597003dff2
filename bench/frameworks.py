"""Requests per second through each framework path vs the standalone server, in one run.

Every path is started as its own single-process server on a loopback port (gunicorn with
one gthread worker of 4 threads, uvicorn with one process), all in front of one fake fal
process, and receives the same small proxied GET (``fake/echo``) from one load generator
with keep-alive connections. Bounded: at most ``--requests`` calls or ``--seconds`` per path
and round.

    .venv/bin/python -m bench.frameworks [--requests 1000] [--seconds 1.5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import httpx

from tests.conftest import TEST_KEY
from tests.support.examples_server import SERVERS, free_port, run_example

PATHS = ["standalone", *sorted(SERVERS)]
HEADERS = {"x-fal-target-url": "https://fal.run/fake/echo?bench=1"}
RESULTS = Path(__file__).with_name("frameworks_results.md")


def _load(
    url: str,
    requests: int,
    seconds: float,
    concurrency: int,
    headers: dict[str, str] = HEADERS,
    body: bytes | None = None,
) -> tuple[int, float]:
    """Send up to ``requests`` GETs (POSTs of ``body``) for at most ``seconds``; returns
    (200s count, elapsed).

    A raw-socket HTTP/1.1 client on keep-alive connections, one thread each: far cheaper
    than a full client, so the servers, not the load generator, set the pace.
    """
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    method = "GET" if body is None else "POST"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    address = (parts.hostname or "127.0.0.1", parts.port or 80)
    budget = iter(range(requests))
    lock = threading.Lock()
    counts: list[int] = []

    def worker(deadline: float | None, count: int = 0) -> None:
        ok = 0
        sock = socket.create_connection(address, timeout=30)
        reader = sock.makefile("rb")
        try:
            while count or (deadline is not None and time.monotonic() < deadline):
                if deadline is not None:
                    with lock:
                        if next(budget, None) is None:
                            break
                count = max(count - 1, 0)
                sock.sendall(request)
                status, keep_alive = _read_response(reader)
                ok += status == 200
                if not keep_alive:  # e.g. Werkzeug's dev server: one request per connection
                    reader.close()
                    sock.close()
                    sock = socket.create_connection(address, timeout=30)
                    reader = sock.makefile("rb")
        finally:
            reader.close()
            sock.close()
        if deadline is not None:
            counts.append(ok)

    worker(None, 20)  # warm-up: pooled upstream connections, first-use imports
    started = time.monotonic()
    threads = [
        threading.Thread(target=worker, args=(started + seconds,)) for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.monotonic() - started


def _read_response(reader: BinaryIO) -> tuple[int, bool]:
    """Read one response (Content-Length or chunked body): its status, and keep-alive."""
    status = int(reader.readline().split()[1])
    length, chunked, keep_alive = 0, False, True
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name.strip().lower() == b"connection":
            keep_alive = b"close" not in value.lower()
    if not chunked:
        reader.read(length)
        return status, keep_alive
    while (size := int(reader.readline().split(b";")[0], 16)) > 0:
        reader.read(size + 2)
    reader.readline()
    return status, keep_alive


def _start_fake(port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "falproxy.standalone.cli", "fake", "--port", str(port)]
    command += ["--expected-key", TEST_KEY, "--speed", "0"]  # no simulated latency
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/__fake__/stats", timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the fake did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="cap per path and round")
    parser.add_argument("--seconds", type=float, default=1.5, help="cap per path and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    fake = _start_fake(port)
    fake_url = f"http://127.0.0.1:{port}"
    rates: dict[str, list[float]] = {name: [] for name in ["fake direct", *PATHS]}
    key = {"authorization": f"Key {TEST_KEY}"}
    try:
        with ExitStack() as servers:
            urls = {"fake direct": f"{fake_url}/run/fake/echo?bench=1"}
            for name in PATHS:
                ready = "/healthz" if name == "standalone" else "/"
                url = servers.enter_context(run_example(name, fake_url, ready_path=ready))
                urls[name] = url + "/api/fal/proxy"
            # Rounds interleave the paths, so drifting load on a shared machine hits all alike.
            for _ in range(args.rounds):
                for name, url in urls.items():
                    headers = key if name == "fake direct" else HEADERS
                    ok, elapsed = _load(url, args.requests, args.seconds, args.concurrency, headers)
                    rates[name].append(ok / elapsed)
                    print(f"{name:16} {ok:6d} ok in {elapsed:5.2f}s  {ok / elapsed:8.0f} req/s")
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    _write(rates, args)


def _write(rates: dict[str, list[float]], args: argparse.Namespace) -> None:
    base = statistics.median(rates["standalone"])
    lines = [
        "# Framework paths vs the standalone server",
        "",
        "Command (one run: every server up at once, paths interleaved in rounds):",
        "",
        "```sh",
        f".venv/bin/python -m bench.frameworks --requests {args.requests} "
        f"--seconds {args.seconds:g} --rounds {args.rounds} --concurrency {args.concurrency}",
        "```",
        "",
        "Same proxied `GET` (`x-fal-target-url: https://fal.run/fake/echo?bench=1`) from a",
        f"raw-socket load generator, {args.concurrency} keep-alive connections (threads). Each",
        "server is one process (gunicorn: one gthread worker, 4 threads); the fake fal runs in",
        "its own process without simulated latency (`fake direct`: no proxy at all).",
        "Median of the rounds. The machine (2 cores) was shared with other jobs: load average",
        f"{os.getloadavg()[0]:.1f} at the end of the run, so compare paths, not absolute numbers.",
        "",
        "| path | req/s (median) | min..max | vs standalone |",
        "|---|---:|---:|---:|",
    ]
    for name, values in rates.items():
        rate = statistics.median(values)
        spread = f"{min(values):.0f}..{max(values):.0f}"
        lines.append(f"| {name} | {rate:.0f} | {spread} | {rate / base:.2f}x |")
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
