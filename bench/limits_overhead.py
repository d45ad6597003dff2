"""Per-request overhead of the rate limiter: no limits vs memory vs Redis storage.

Two measurements, both bounded in count:

1. end to end: `falproxy serve` (one worker) in front of `falproxy fake --speed 0`, each
   as its own process on loopback, one proxy per limiter setting; this script sends
   sequential sync runs to the three proxies in turn (so machine noise hits all three
   alike) and reports the median latency per call and its ratio to no limits;
2. the limiter alone: `RateLimiter.check` called in a loop in this process, which is
   what each call pays on top (one `hit` per matching rule: a dict update in memory,
   one Redis round-trip with Redis).

Usage: .venv/bin/python bench/limits_overhead.py [--requests 1000] [--checks 20000]
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

from falproxy.admission.ratelimit import RateLimiter
from falproxy.core.rate_rules import RateLimit

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


@contextmanager
def proxy(fake: str, limit_env: dict[str, str]) -> Iterator[str]:
    """A `falproxy serve` process with the given limit settings; yields its route URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(FAL_KEY=KEY, FALPROXY_ALLOW_ANONYMOUS="true", **limit_env)
    args = [FALPROXY, "serve", "--port", str(port), "--upstream", f"fal.run={fake}/run"]
    with process([*args, "--log-level", "warning"], port, env) as base:
        yield f"{base}/api/fal/proxy"


def interleaved(urls: dict[str, str], requests: int) -> dict[str, list[float]]:
    """Seconds per call for each proxy, calls interleaved one by one so noise hits all."""
    timings: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client() as client:
        for _ in range(50):  # warm-up: connections, imports, caches
            for url in urls.values():
                client.post(url, headers=HEADERS, json={"prompt": "x"}).raise_for_status()
        for _ in range(requests):
            for name, url in urls.items():
                started = time.perf_counter()
                client.post(url, headers=HEADERS, json={"prompt": "x"}).raise_for_status()
                timings[name].append(time.perf_counter() - started)
    return timings


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
    parser.add_argument("--requests", type=int, default=1000, help="calls per setting")
    parser.add_argument("--checks", type=int, default=20000)
    args = parser.parse_args()
    redis_port = free_port()
    redis = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    fake_port = free_port()
    fake_args = [FALPROXY, "fake", "--port", str(fake_port), "--speed", "0"]
    with process(redis, redis_port), process(fake_args, fake_port) as fake:
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        with (
            proxy(fake, {}) as plain,
            proxy(fake, {"FALPROXY_RATE_LIMIT": GENEROUS}) as memory,
            proxy(fake, {"FALPROXY_RATE_LIMIT": GENEROUS, "FALPROXY_REDIS_URL": redis_url}) as red,
        ):
            urls = {"no limits": plain, "memory": memory, "redis": red}
            timings = interleaved(urls, args.requests)
        alone = {
            "memory": asyncio.run(limiter_alone(args.checks, None)),
            "redis": asyncio.run(limiter_alone(args.checks, redis_url)),
        }
    base = statistics.median(timings["no limits"])
    print(f"{args.requests} calls per setting, interleaved; {args.checks} limiter checks alone")
    print("| storage | median per call (ms) | ratio | added per call (us) | limiter alone (us) |")
    print("|---|---|---|---|---|")
    for name, samples in timings.items():
        median = statistics.median(samples)
        added = (median - base) * 1e6
        lone = f"{alone[name] * 1e6:.0f}" if name in alone else "-"
        print(f"| {name} | {median * 1e3:.3f} | {median / base:.3f} | {added:.0f} | {lone} |")


if __name__ == "__main__":
    main()
