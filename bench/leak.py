"""10,000 client aborts mid-stream through the proxy; records what is left open.

Runs the fake fal and the proxy in this process (uvicorn threads, as in the tests), then
aborts SSE streams in rounds, half with a clean close and half with a TCP reset, and
writes `bench/leak_results.md`. The CI version is `tests/live/test_leaks.py` (2,000 aborts).

    python bench/leak.py --aborts 10000 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from falproxy import FalProxy  # noqa: E402
from falproxy.fake import create_fake_app  # noqa: E402
from tests.conftest import FAKE_SPEED, TEST_KEY, proxy_config, serve  # noqa: E402
from tests.support.leak_check import run_aborts  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aborts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=15.0)
    args = parser.parse_args()
    per_round = args.aborts // args.rounds
    rows = []
    with (
        serve(create_fake_app(speed=FAKE_SPEED, expected_key=TEST_KEY)) as fake_url,
        serve(FalProxy(proxy_config(fake_url))) as proxy_url,
        httpx.Client(base_url=fake_url) as fake,
    ):
        for _ in range(args.rounds):
            report = run_aborts(proxy_url, fake, per_round, args.max_minutes * 60 / args.rounds)
            rows.append(report)
            print(report, flush=True)
    total = sum(row.aborts for row in rows)
    lines = [
        "# Leak results",
        "",
        f"`python bench/leak.py --aborts {args.aborts} --rounds {args.rounds}`: fake fal and",
        "proxy in one process (uvicorn threads); each abort opens an SSE stream through the",
        "proxy, waits for its first event, then closes (even) or resets (odd) the connection.",
        f"Machine: {os.cpu_count()} cores shared with other work, load {os.getloadavg()[0]:.1f}.",
        "",
        "| round | aborts | seconds | fds before / after | RSS MiB before / after |"
        " fake open streams | fake saw disconnects | open-upstream gauge |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for index, row in enumerate(rows, 1):
        lines.append(
            f"| {index} | {row.aborts} | {row.seconds:.0f} | {row.fds_before} / {row.fds_after} |"
            f" {row.rss_before_mib:.1f} / {row.rss_after_mib:.1f} | {row.fake_open_streams} |"
            f" {row.fake_disconnected} | {row.gauge_after} |"
        )
    lines += [
        "",
        f"Total aborts: {total}. RSS from the first round's start to the end:"
        f" {rows[0].rss_before_mib:.1f} -> {rows[-1].rss_after_mib:.1f} MiB;"
        f" fds {rows[0].fds_before} -> {rows[-1].fds_after}.",
    ]
    (ROOT / "bench" / "leak_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    clean = all(row.fake_open_streams == 0 and row.gauge_after == 0 for row in rows)
    return 0 if clean and total == args.aborts else 1


if __name__ == "__main__":
    sys.exit(main())
