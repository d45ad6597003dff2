"""Frames per second and memory per idle socket: through the relay vs straight to the fake.

Starts the fake fal (``falproxy fake``) and the proxy (``falproxy serve --upstream``) as two
child processes on loopback ports, then drives both paths with the same traffic:

* throughput: SOCKETS sockets each doing ROUND_TRIPS msgpack input -> result round trips
  (each result is a ~1 KB msgpack map holding a PNG), reported as frames per second;
* memory: IDLE sockets opened (one round trip each, then idle), and the growth of the
  resident set of the process holding them (the proxy when relayed, the fake when direct)
  divided by IDLE.

Usage: python bench/ws_relay.py [--sockets 4] [--round-trips 500] [--idle 300]
Runs in well under a minute on a laptop; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import msgpack
from websockets.asyncio.client import ClientConnection, connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.proc_stats import rss_kib

KEY = "bench-key-id:bench-key-secret"
TARGET = "wss://fal.run/fal-ai/fast-lcm-diffusion/realtime"
INPUT = msgpack.packb({"prompt": "a lighthouse", "seed": 7, "request_id": "bench"})
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, deadline: float = 20.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


@contextmanager
def child(args: list[str], port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)


async def round_trips(url: str, count: int, headers: dict[str, str]) -> int:
    async with connect(url, additional_headers=headers, max_size=None) as ws:
        for _ in range(count):
            await ws.send(INPUT)
            await ws.recv()
    return count * 2  # one frame up, one frame down


async def throughput(url: str, sockets: int, count: int, headers: dict[str, str]) -> float:
    await round_trips(url, 5, headers)  # warm up
    started = time.perf_counter()
    frames = await asyncio.gather(*(round_trips(url, count, headers) for _ in range(sockets)))
    return sum(frames) / (time.perf_counter() - started)


async def idle_memory(url: str, idle: int, pid: int, headers: dict[str, str]) -> float:
    async def one() -> ClientConnection:
        ws = await connect(url, additional_headers=headers, open_timeout=60)
        await ws.send(INPUT)
        await ws.recv()
        return ws

    await (await one()).close()  # warm up lazily allocated state
    await asyncio.sleep(0.5)
    before = rss_kib(pid)
    opened = []
    for start in range(0, idle, 50):
        opened += await asyncio.gather(*(one() for _ in range(min(50, idle - start))))
    await asyncio.sleep(1.0)
    after = rss_kib(pid)
    await asyncio.gather(*(ws.close() for ws in opened))
    return (after - before) / idle


async def main(args: argparse.Namespace) -> None:
    fake_port, proxy_port = free_port(), free_port()
    env = {**os.environ, "FAL_KEY": KEY}
    exe = [sys.executable, "-m", "falproxy.standalone.cli"]
    # speed 6 stretches the fake's 10 s idle close to 60 s, so idle sockets stay open.
    fake_cmd = [*exe, "fake", "--port", str(fake_port), "--speed", "6", "--expected-key", KEY]
    upstream = f"fal.run=http://{LOOPBACK}:{fake_port}/run"
    proxy_cmd = [*exe, "serve", "--port", str(proxy_port), "--upstream", upstream]
    proxy_cmd += ["--log-level", "warning"]
    direct = f"ws://{LOOPBACK}:{fake_port}/run/fal-ai/fast-lcm-diffusion/realtime"
    relayed = f"ws://{LOOPBACK}:{proxy_port}/api/fal/proxy?fal_target_url={quote(TARGET, safe='')}"
    key_header = {"authorization": f"Key {KEY}"}
    with child(fake_cmd, fake_port, env) as fake, child(proxy_cmd, proxy_port, env) as proxy:
        rows = []
        for name, url, headers, holder in (
            ("direct to fake", direct, key_header, fake.pid),
            ("through relay", relayed, {}, proxy.pid),
        ):
            fps = await throughput(url, args.sockets, args.round_trips, headers)
            kib = await idle_memory(url, args.idle, holder, headers)
            rows.append((name, fps, kib))
    print(f"sockets={args.sockets} round_trips={args.round_trips} idle={args.idle}")
    print("| path | frames/s | RSS growth per idle socket (KiB), process holding it |")
    print("|---|---|---|")
    for name, fps, kib in rows:
        holder = "fake" if name.startswith("direct") else "proxy"
        print(f"| {name} | {fps:,.0f} | {kib:.1f} ({holder}) |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=4)
    parser.add_argument("--round-trips", type=int, default=500)
    parser.add_argument("--idle", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
