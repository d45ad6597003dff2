"""Per-call cost of request ownership and spend budgets on a status poll (issue 20).

`falproxy fake --speed 0` and four `falproxy serve` processes (one worker each) on
loopback, all with bearer tokens: ownership off; ownership on (memory); ownership and a
spend budget (memory); ownership and a spend budget in Redis. Each proxy gets one queue
submit through itself (so it holds the owner record), then one sequential client polls
that request's status on the four proxies in turn, so machine noise hits all alike, and
the median per poll is compared. A budget never refuses (its limit is far away) and its
price comes from a prices file, so the pricing API is not in the measurement. A second
table does the same for sync runs, which hold and charge a budget.

Usage: .venv/bin/python bench/ownership_overhead.py [--requests 1000] [--repeats 2]
Needs `redis-server` on PATH. Results: bench/ownership_results.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from limits_overhead import FALPROXY, free_port, process

KEY = "bench-key-id:bench-key-secret"
TOKEN = "bench-token"
SUBMIT = "https://queue.fal.run/fal-ai/flux/dev"
RUN = "https://fal.run/fal-ai/flux/dev"
BUDGET = "1000000/day"  # never reached: the bookkeeping, not refusals


@contextmanager
def proxy(fake: str, settings: dict[str, str]) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(FAL_KEY=KEY, FALPROXY_AUTH_TOKENS=TOKEN, **settings)
    hosts = [
        f"{host}={fake}/{path}" for host, path in (("fal.run", "run"), ("queue.fal.run", "queue"))
    ]
    args = [FALPROXY, "serve", "--port", str(port), "--log-level", "warning"]
    for pair in hosts:
        args += ["--upstream", pair]
    with process(args, port, env) as base:
        yield f"{base}/api/fal/proxy"


def headers(target: str) -> dict[str, str]:
    return {
        "x-fal-target-url": target,
        "content-type": "application/json",
        "authorization": f"Bearer {TOKEN}",
    }


def poll_targets(client: httpx.Client, urls: dict[str, str]) -> dict[str, str]:
    """One submit per proxy (through it, so it owns the record); its status URL."""
    targets = {}
    for name, url in urls.items():
        answer = client.post(url, headers=headers(SUBMIT), json={"prompt": "x"})
        answer.raise_for_status()
        targets[name] = answer.json()["status_url"]
    return targets


def interleaved(
    client: httpx.Client, urls: dict[str, str], targets: dict[str, str], method: str, n: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {name: [] for name in urls}
    for round_ in range(50 + n):
        for name, url in urls.items():
            started = time.perf_counter()
            if method == "GET":
                answer = client.get(url, headers=headers(targets[name]))
            else:
                answer = client.post(url, headers=headers(RUN), json={"prompt": "x"})
            elapsed = time.perf_counter() - started
            assert answer.status_code in (200, 202), answer.text
            if round_ >= 50:  # the first 50 rounds warm connections and caches
                timings[name].append(elapsed)
    return timings


def table(title: str, timings: dict[str, list[float]]) -> None:
    base = statistics.median(timings["ownership off"])
    print(f"\n{title}")
    print("| setting | median per call (ms) | ratio to off | added per call (us) |")
    print("|---|---|---|---|")
    for name, samples in timings.items():
        median = statistics.median(samples)
        print(
            f"| {name} | {median * 1e3:.3f} | {median / base:.3f} | {(median - base) * 1e6:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000, help="calls per setting")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    redis_port = free_port()
    redis = ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
    fake_port = free_port()
    fake_args = [FALPROXY, "fake", "--port", str(fake_port), "--speed", "0"]
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        prices = Path(tmp) / "prices.json"
        prices.write_text('{"**": 0.01}')
        stack.enter_context(process(redis, redis_port))
        fake = stack.enter_context(process(fake_args, fake_port))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        budget = {"FALPROXY_SPEND_LIMIT": BUDGET, "FALPROXY_PRICES": str(prices)}
        settings = {
            "ownership off": {"FALPROXY_REQUEST_OWNERSHIP": "off"},
            "ownership (memory)": {},
            "ownership + budget (memory)": budget,
            "ownership + budget (redis)": {**budget, "FALPROXY_REDIS_URL": redis_url},
        }
        urls = {name: stack.enter_context(proxy(fake, env)) for name, env in settings.items()}
        with httpx.Client(timeout=10) as client:
            targets = poll_targets(client, urls)
            for repeat in range(1, args.repeats + 1):
                polls = interleaved(client, urls, targets, "GET", args.requests)
                table(f"status poll, run {repeat} ({args.requests} per setting)", polls)
                runs = interleaved(client, urls, targets, "POST", args.requests // 2)
                table(f"sync run, run {repeat} ({args.requests // 2} per setting)", runs)


if __name__ == "__main__":
    main()
