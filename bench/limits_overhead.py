"""Per-request overhead of the rate limiter: no limits vs memory vs Redis storage.

Two measurements, both bounded in count:

1. end to end: `falproxy serve` (one worker) in front of `falproxy fake --speed 0`, each
   as its own process on loopback; this script sends sequential sync runs and reports,
   per limiter setting, the median over interleaved rounds of the mean latency per call
   and its ratio to no limits;
2. the limiter alone: `RateLimiter.check` called in a loop in this process, which is
   what each call pays on top (one `hit` per matching rule: a dict update in memory,
   one Redis round-trip with Redis).

Usage: .venv/bin/python bench/limits_overhead.py [--requests 300] [--rounds 5] [--checks 20000]
Needs `redis-server` on PATH for the Redis rows. Results: bench/limits_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from falproxy.ratelimit import RateLimit, RateLimiter

FALPROXY = str(Path(sys.executable).parent / "falproxy")
KEY = "bench-key-id:bench-key-secret"
GENEROUS = "1000000/minute"  # never reached: we measure the bookkeeping, not refusals
HEADERS = {
    "x-fal-target-url": "https://fal.run/fal-ai/flux/dev",
    "content-type": "application/json",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{args[0]} did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def end_to_end(fake: str, requests: int, limit_env: dict[str, str]) -> float:
    """Mean seconds per call through a proxy process with the given limit settings."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(FAL_KEY=KEY, FALPROXY_ALLOW_ANONYMOUS="true", **limit_env)
    args = [FALPROXY, "serve", "--port", str(port), "--upstream", f"fal.run={fake}/run"]
    with process([*args, "--log-level", "warning"], port, env) as base, httpx.Client() as client:
        url = f"{base}/api/fal/proxy"
        for _ in range(100):  # warm-up: connections, imports, caches
            client.post(url, headers=HEADERS, json={"prompt": "x"}).raise_for_status()
        started = time.perf_counter()
        for _ in range(requests):
            client.post(url, headers=HEADERS, json={"prompt": "x"}).raise_for_status()
        return (time.perf_counter() - started) / requests


async def limiter_alone(checks: int, redis_url: str | None) -> float:
    limiter = RateLimiter((RateLimit(GENEROUS),), storage_url=redis_url, fail_open=False)
    for _ in range(100):
        await limiter.check("fal-ai/flux/dev", "user", "127.0.0.1")
    started = time.perf_counter()
    for _ in range(checks):
        await limiter.check("fal-ai/flux/dev", "user", "127.0.0.1")
    elapsed = (time.perf_counter() - started) / checks
    await limiter.aclose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--checks", type=int, default=20000)
    args = parser.parse_args()
    redis_port = free_port()
    redis = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    fake_port = free_port()
    fake_args = [FALPROXY, "fake", "--port", str(fake_port), "--speed", "0"]
    with process(redis, redis_port), process(fake_args, fake_port) as fake:
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        settings = {
            "no limits": {},
            "memory": {"FALPROXY_RATE_LIMIT": GENEROUS},
            "redis": {"FALPROXY_RATE_LIMIT": GENEROUS, "FALPROXY_REDIS_URL": redis_url},
        }
        rounds: dict[str, list[float]] = {name: [] for name in settings}
        for _ in range(args.rounds):  # interleaved rounds, median, against machine noise
            for name, env in settings.items():
                rounds[name].append(end_to_end(fake, args.requests, env))
        alone = {
            "memory": asyncio.run(limiter_alone(args.checks, None)),
            "redis": asyncio.run(limiter_alone(args.checks, redis_url)),
        }
    base = statistics.median(rounds["no limits"])
    print("| storage | mean per call (ms) | ratio | added per call (us) | limiter alone (us) |")
    print("|---|---|---|---|---|")
    for name, samples in rounds.items():
        best = statistics.median(samples)
        added = (best - base) * 1e6
        lone = f"{alone[name] * 1e6:.0f}" if name in alone else "-"
        print(f"| {name} | {best * 1e3:.3f} | {best / base:.3f} | {added:.0f} | {lone} |")
    spread = {name: f"{statistics.pstdev(s) * 1e3:.3f}" for name, s in rounds.items()}
    print(f"\nround-to-round spread (ms): {spread}")


if __name__ == "__main__":
    main()
