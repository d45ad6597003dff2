"""WSGI throughput before and after a change, in one run: Flask under gunicorn gthread.

Two copies of the Flask example (``examples/flask_app.py``) run side by side with the same
documented command, ``gunicorn -k gthread --threads 8 -w 1 examples.flask_app:app``: one
from a git revision (``--before``, exported with ``git archive``), one from the working
tree. Both are in front of one fake fal process (no simulated latency) and receive the
same calls from the raw-socket load generator of ``bench/frameworks.py``, rounds
interleaved so that drifting load on a shared machine hits both alike:

- poll: ``GET fake/echo`` (the shape of a status poll);
- post: ``POST fake/echo`` with a 4 KiB JSON body;
- download: ``GET fake/bytes?size=1048576`` (1 MiB streamed through).

    .venv/bin/python -m bench.wsgi_path [--before main] [--seconds 3] [--rounds 5]

Bounded: every load run stops after ``--requests`` calls or ``--seconds``; every process
started is stopped by its pid. Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bench.frameworks import _load, _start_fake
from tests.conftest import TEST_KEY
from tests.support.examples_server import free_port
from tests.support.procs import upstreams_env

REPO = Path(__file__).resolve().parent.parent
COMMAND = ["gunicorn", "-k", "gthread", "--threads", "8", "-w", "1", "examples.flask_app:app"]
ROUTE = "/api/fal/proxy"
POST_BODY = json.dumps({"prompt": "x" * 4000}).encode()
SCENARIOS = {
    "poll": ({"x-fal-target-url": "https://fal.run/fake/echo?bench=1"}, None),
    "post": (
        {"x-fal-target-url": "https://fal.run/fake/echo", "content-type": "application/json"},
        POST_BODY,
    ),
    "download": ({"x-fal-target-url": "https://fal.run/fake/bytes?size=1048576"}, None),
}


def export(revision: str, folder: Path) -> Path:
    """The package and examples of ``revision``, unpacked into ``folder``."""
    archive = folder / "tree.tar"
    subprocess.run(
        ["git", "archive", "-o", str(archive), revision, "falproxy", "examples"],
        cwd=REPO,
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return folder / "tree"


@contextmanager
def gunicorn(tree: Path, fake_url: str) -> Iterator[str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(tree))
    env.update(FAL_KEY=TEST_KEY, FALPROXY_UPSTREAMS=upstreams_env(fake_url))
    argv = [str(Path(sys.executable).parent / COMMAND[0]), *COMMAND[1:]]
    argv += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--no-control-socket"]
    process = subprocess.Popen(argv, cwd=tree, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"gunicorn in {tree} did not start")
            time.sleep(0.1)
        yield url + ROUTE
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git revision to compare against")
    parser.add_argument("--requests", type=int, default=20_000, help="cap per run")
    parser.add_argument("--seconds", type=float, default=3.0, help="cap per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rates: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        before = export(args.before, Path(tmp))
        port = free_port()
        fake = _start_fake(port)
        stack.callback(lambda: (fake.terminate(), fake.wait(timeout=10)))
        fake_url = f"http://127.0.0.1:{port}"
        urls = {
            f"before ({args.before})": stack.enter_context(gunicorn(before, fake_url)),
            "after (working tree)": stack.enter_context(gunicorn(REPO, fake_url)),
        }
        for _ in range(args.rounds):
            for scenario, (headers, body) in SCENARIOS.items():
                for name, url in urls.items():
                    ok, elapsed = _load(
                        url, args.requests, args.seconds, args.concurrency, headers, body
                    )
                    rates.setdefault((scenario, name), []).append(ok / elapsed)
                    print(f"{scenario:9} {name:24} {ok / elapsed:8.0f} req/s", flush=True)
    print()
    print("| scenario | tree | req/s (median) | min..max |")
    print("|---|---|---:|---:|")
    for (scenario, name), values in rates.items():
        spread = f"{min(values):.0f}..{max(values):.0f}"
        print(f"| {scenario} | {name} | {statistics.median(values):.0f} | {spread} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
