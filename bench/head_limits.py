"""Request-head abuse against a real `falproxy serve` (issue 12 item 2): memory and slowloris.

1. Four connections each send a 20 MB request head that never ends; the worker's RSS is
   sampled throughout (before the fix httptools buffered it all).
2. 200 connections drip header bytes while 20 normal calls run; after 13 s (past the default
   10 s FALPROXY_HEADER_TIMEOUT) the script counts how many dripping connections are open.

Run with the code under test first on PYTHONPATH:
    PYTHONPATH=. python bench/head_limits.py [port]
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import suppress
from pathlib import Path

import httpx

FALPROXY = str(Path(sys.executable).parent / "falproxy")
FLOOD_CONNECTIONS = 4
FLOOD_MB = 20
DRIPPING = 200
CHUNK = b"a" * 65536


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) // 1024


def start(port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, FAL_KEY="bench-key-id:bench-key-secret")
    command = [FALPROXY, "serve", "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    for _ in range(200):
        with suppress(OSError):
            socket.create_connection(("127.0.0.1", port)).close()
            return process
        time.sleep(0.05)
    raise SystemExit("falproxy serve did not start")


def flood(port: int, sent: list[int], index: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with suppress(OSError):
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-fill: ")
        for _ in range(FLOOD_MB * 16):
            sock.sendall(CHUNK)
            sent[index] += len(CHUNK)
    time.sleep(1)
    sock.close()


def measure_flood(port: int, pid: int) -> str:
    before = peak = rss_mb(pid)
    sent = [0] * FLOOD_CONNECTIONS
    threads = [
        threading.Thread(target=flood, args=(port, sent, i)) for i in range(FLOOD_CONNECTIONS)
    ]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        peak = max(peak, rss_mb(pid))
        time.sleep(0.05)
    accepted = [round(n / 2**20, 1) for n in sent]
    return (
        f"{FLOOD_CONNECTIONS} x {FLOOD_MB} MB unfinished heads: RSS {before} MB before, "
        f"peak {peak} MB; MB written per connection before the server stopped it: {accepted}"
    )


def measure_drip(port: int) -> str:
    dripping = []
    for _ in range(DRIPPING):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        sock.setblocking(False)
        dripping.append(sock)
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(20):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append((time.perf_counter() - started) * 1000)
    started = time.monotonic()
    while time.monotonic() - started < 13:
        for sock in dripping:
            with suppress(OSError):
                sock.send(b"x")
        time.sleep(1)
    still_open = sum(_is_open(sock) for sock in dripping)
    for sock in dripping:
        sock.close()
    return (
        f"{DRIPPING} dripping heads: 20/20 normal calls ok (median "
        f"{sorted(latencies)[10]:.1f} ms, max {max(latencies):.1f} ms); "
        f"still open after 13 s: {still_open}/{DRIPPING}"
    )


def _is_open(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 18790
    process = start(port)
    try:
        print(measure_flood(port, process.pid))
        print(measure_drip(port))
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
