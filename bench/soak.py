"""Soak: mixed traffic through a real `falproxy serve` process for a bounded time.

Starts the fake fal and the proxy as separate processes on loopback ports, drives a fixed
number of concurrent workers (queue submits with status polls, sync runs, SSE streams,
streams aborted mid-way, refused calls, and WebSockets: relayed realtime frames, idle
sockets closed by the proxy's idle timeout, sockets aborted mid-way without a close frame,
and the per-identity limits refusing a greedy caller's message (1008) and a hoarder's
extra socket (429)), and every few seconds samples the proxy's RSS and open file
descriptors, the fake's open streams and sockets and the error counts. Writes
`soak_results.csv`, `soak_results.png` and `soak_results.md` into `--results-dir`
(default `bench/`). Bounded: stops after `--minutes` whatever happens; every socket wait
has a timeout.

    python bench/soak.py --minutes 10

matplotlib is needed only for the plot; it is installed into the running interpreter
if missing (it is in the `bench` extra, not a test dependency).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgpack
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.proc_stats import open_fds, rss_kib  # noqa: E402

ROUTE = "/api/fal/proxy"
KEY = "soak-key-id:soak-key-secret"
JSON = {"content-type": "application/json"}
SAMPLE_SECONDS = 5.0
WORKERS = 8
# Statuses a scenario may legitimately end in; anything else is an unexpected error.
EXPECTED = {"run": {200}, "submit": {200}, "status": {200, 202}, "refused": {412}, "sse": {200}}
# The WebSocket scenario's proxy settings: idle sockets close after WS_IDLE_SECONDS, each
# identity may send WS_MESSAGE_RATE messages and hold WS_MAX_SOCKETS sockets.
WS_TARGET = "wss://fal.run/fal-ai/fast-lcm-diffusion/realtime"
WS_PATH = f"{ROUTE}?fal_target_url={quote(WS_TARGET, safe='')}"
WS_IDLE_SECONDS = 2.0
WS_MESSAGE_RATE = "10/second"
WS_MAX_SOCKETS = 3
WS_WAIT = 15.0  # the longest any socket step may take before it counts as an error
REALTIME_FRAMES = 3
# A worker's own sockets send at most one frame per FRAME_INTERVAL (a 6 fps realtime app),
# under WS_MESSAGE_RATE in any window, so only the greedy identity is refused.
FRAME_INTERVAL = 0.15
# Over three fixed 1-second windows' worth of 10: one is refused wherever the windows fall.
GREEDY_FRAMES = 35
POLICY_VIOLATION = 1008  # RFC 6455 7.4.1: the proxy's close for a caller over its rate


@dataclass
class Tally:
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)

    def check(self, kind: str, status: int) -> None:
        self.calls[kind] += 1
        if status not in EXPECTED[kind]:
            self.fail(kind, f"status {status}")

    def fail(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {what}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def tokens(worker: int) -> dict[str, str]:
    """Each worker's identities: its own calls, a greedy sender and a socket hoarder.

    Separate identities keep the refusal scenarios from refusing the worker's own calls.
    """
    return {role: f"soak-{role}-{worker}" for role in ("calls", "greedy", "hog")}


def start_processes() -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], str, str]:
    fake_port, proxy_port = free_port(), free_port()
    falproxy = [str(Path(sys.executable).parent / "falproxy")]
    fake = subprocess.Popen(
        [*falproxy, "fake", "--port", str(fake_port), "--speed", "0.05"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fake_url = f"http://127.0.0.1:{fake_port}"
    upstreams = [
        f"--upstream=fal.run={fake_url}/run",
        f"--upstream=queue.fal.run={fake_url}/queue",
        f"--upstream=rest.fal.ai={fake_url}/rest",
    ]
    every_token = [token for worker in range(WORKERS) for token in tokens(worker).values()]
    env = {
        **os.environ,
        "FAL_KEY": KEY,
        "FALPROXY_AUTH_TOKENS": ",".join(every_token),
        "FALPROXY_WS_IDLE_TIMEOUT": str(WS_IDLE_SECONDS),
        "FALPROXY_WS_MESSAGE_RATE": WS_MESSAGE_RATE,
        "FALPROXY_WS_MAX_SOCKETS": str(WS_MAX_SOCKETS),
    }
    proxy = subprocess.Popen(
        [*falproxy, "serve", "--port", str(proxy_port), "--log-level", "warning", *upstreams],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(proxy_url + "/healthz", timeout=1).raise_for_status()
            httpx.get(fake_url + "/__fake__/stats", timeout=1).raise_for_status()
            return fake, proxy, fake_url, proxy_url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("proxy or fake did not start")


def target(url: str) -> dict[str, str]:
    return {"x-fal-target-url": url, **JSON}


async def scenario_run(client: httpx.AsyncClient, tally: Tally) -> None:
    response = await client.post(
        ROUTE, headers=target("https://fal.run/fal-ai/flux/dev"), json={"prompt": "soak"}
    )
    tally.check("run", response.status_code)


async def scenario_queue(client: httpx.AsyncClient, tally: Tally) -> None:
    submit = await client.post(
        ROUTE, headers=target("https://queue.fal.run/fal-ai/flux/dev"), json={"prompt": "q"}
    )
    tally.check("submit", submit.status_code)
    if submit.status_code != 200:
        return
    status_url = submit.json()["status_url"]
    for _ in range(5):
        status = await client.get(ROUTE, headers=target(status_url))
        tally.check("status", status.status_code)
        await asyncio.sleep(0.05)


async def scenario_sse(client: httpx.AsyncClient, tally: Tally, *, abort: bool) -> None:
    url = "https://fal.run/fake/slow-stream?events=6&interval=0.05"
    async with client.stream("POST", ROUTE, headers=target(url), json={}) as response:
        tally.check("sse", response.status_code)
        events = 0
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                events += 1
                if abort and events == 2:
                    tally.calls["abort"] += 1
                    return  # leaving the block closes the connection mid-stream
        if events < 6:
            tally.fail("sse", f"only {events} events")


async def scenario_refused(client: httpx.AsyncClient, tally: Tally) -> None:
    response = await client.get(ROUTE, headers=target("https://evil.example/fal-ai/flux/dev"))
    tally.check("refused", response.status_code)


def open_socket(ws_url: str, token: str) -> Any:
    """A relayed socket (``async with`` or ``await``), opened as ``token``'s identity."""
    return ws_connect(
        ws_url,
        additional_headers={"authorization": f"Bearer {token}"},
        open_timeout=WS_WAIT,
        close_timeout=WS_WAIT,
        max_size=4 * 1024 * 1024,
    )


class Pacer:
    """Spaces one identity's frames at least ``interval`` seconds apart."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = 0.0

    async def wait(self) -> None:
        delay = self._last + self.interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last = time.monotonic()


def frame(request_id: str) -> bytes:
    packed: bytes = msgpack.packb({"prompt": "soak", "request_id": request_id})
    return packed


async def closed_code(ws: ClientConnection) -> int | None:
    """Read until the proxy closes the socket; its close code (None: it never closed)."""
    try:
        async with asyncio.timeout(WS_WAIT):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else None
    except TimeoutError:
        return None


async def scenario_ws_realtime(ws_url: str, token: str, pacer: Pacer, tally: Tally) -> None:
    """Frames relayed both ways, each reply matched to its request."""
    async with open_socket(ws_url, token) as ws:
        for index in range(REALTIME_FRAMES):
            await pacer.wait()
            await ws.send(frame(f"rt-{index}"))
            reply = msgpack.unpackb(await asyncio.wait_for(ws.recv(), WS_WAIT))
            if reply.get("request_id") != f"rt-{index}":
                tally.fail("ws_realtime", "a reply to another request")
                return
            tally.calls["ws_frames"] += 1
    tally.calls["ws_realtime"] += 1


async def scenario_ws_idle(ws_url: str, token: str, tally: Tally) -> None:
    """A socket that sends nothing must be closed by the proxy (1000) after its idle time."""
    async with open_socket(ws_url, token) as ws:
        code = await closed_code(ws)
    tally.calls["ws_idle"] += 1
    if code != 1000:
        tally.fail("ws_idle", f"closed with {code}")


async def scenario_ws_abort(ws_url: str, token: str, pacer: Pacer, tally: Tally) -> None:
    """A client that vanishes mid-socket (no close frame): the proxy must close fal's side."""
    ws = await open_socket(ws_url, token)
    await pacer.wait()
    await ws.send(frame("abort"))
    ws.transport.abort()
    await asyncio.wait_for(ws.wait_closed(), WS_WAIT)
    tally.calls["ws_abort"] += 1


async def scenario_ws_greedy(ws_url: str, token: str, tally: Tally) -> None:
    """Messages over the identity's rate: the socket must close with 1008."""
    async with open_socket(ws_url, token) as ws:
        try:
            for index in range(GREEDY_FRAMES):
                await ws.send(frame(f"greedy-{index}"))
        except ConnectionClosed:
            pass  # closed while sending: the code is read below
        code = await closed_code(ws)
    tally.calls["ws_rate_refused"] += 1
    if code != POLICY_VIOLATION:
        tally.fail("ws_greedy", f"closed with {code}")


async def scenario_ws_hog(ws_url: str, token: str, tally: Tally) -> None:
    """Sockets over the identity's limit: a handshake must be refused with 429.

    Slots of this identity's previous run may still be closing, so the refusal may come
    before WS_MAX_SOCKETS sockets are open, but never after.
    """
    async with AsyncExitStack() as held:
        for _ in range(WS_MAX_SOCKETS + 1):
            try:
                await held.enter_async_context(open_socket(ws_url, token))
            except InvalidStatus as exc:
                tally.calls["ws_socket_refused"] += 1
                if exc.response.status_code != 429:
                    tally.fail("ws_hog", f"status {exc.response.status_code}")
                return
    tally.fail("ws_hog", f"{WS_MAX_SOCKETS + 1} sockets accepted")


Scenario = Callable[[], Any]


async def worker(proxy_url: str, stop_at: float, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    identities = tokens(seed)
    ws_url = "ws://" + proxy_url.removeprefix("http://") + WS_PATH
    bearer = {"authorization": f"Bearer {identities['calls']}"}
    pacer = Pacer(FRAME_INTERVAL)
    async with httpx.AsyncClient(base_url=proxy_url, timeout=30, headers=bearer) as client:
        # (cumulative probability, scenario): HTTP as before, then the socket scenarios.
        scenarios: list[tuple[float, str, Scenario]] = [
            (0.18, "run", lambda: scenario_run(client, tally)),
            (0.36, "queue", lambda: scenario_queue(client, tally)),
            (0.50, "sse", lambda: scenario_sse(client, tally, abort=False)),
            (0.64, "sse", lambda: scenario_sse(client, tally, abort=True)),
            (0.70, "refused", lambda: scenario_refused(client, tally)),
            (
                0.82,
                "ws_realtime",
                lambda: scenario_ws_realtime(ws_url, identities["calls"], pacer, tally),
            ),
            (0.86, "ws_idle", lambda: scenario_ws_idle(ws_url, identities["calls"], tally)),
            (
                0.94,
                "ws_abort",
                lambda: scenario_ws_abort(ws_url, identities["calls"], pacer, tally),
            ),
            (0.97, "ws_greedy", lambda: scenario_ws_greedy(ws_url, identities["greedy"], tally)),
            (1.00, "ws_hog", lambda: scenario_ws_hog(ws_url, identities["hog"], tally)),
        ]
        while time.monotonic() < stop_at:
            pick = rng.random()
            name, run = next((name, run) for bound, name, run in scenarios if pick < bound)
            try:
                await run()
            except httpx.HTTPError as exc:
                tally.fail("transport", f"{name}: {type(exc).__name__}")
            except (WebSocketException, OSError, TimeoutError) as exc:
                tally.fail("ws_transport", f"{name}: {type(exc).__name__} {exc}")


async def sampler(
    proxy_pid: int,
    fake_url: str,
    started: float,
    stop_at: float,
    tally: Tally,
    rows: list[dict[str, float]],
) -> None:
    async with httpx.AsyncClient(base_url=fake_url, timeout=10) as fake:
        while True:
            stats = (await fake.get("/__fake__/stats")).json()
            sockets = (await fake.get("/__fake__/realtime")).json()
            rows.append(
                {
                    "seconds": round(time.monotonic() - started, 1),
                    "rss_mib": round(rss_kib(proxy_pid) / 1024, 2),
                    "fds": open_fds(proxy_pid),
                    "calls": sum(tally.calls.values()),
                    "aborts": tally.calls["abort"],
                    "errors": sum(tally.errors.values()),
                    "ws_aborts": tally.calls["ws_abort"],
                    "fake_open_streams": stats["open_streams"],
                    "fake_open_sockets": sockets["active"],
                    "load1": os.getloadavg()[0],
                }
            )
            if time.monotonic() >= stop_at:
                return
            await asyncio.sleep(min(SAMPLE_SECONDS, max(0.0, stop_at - time.monotonic())))


async def soak(minutes: float) -> tuple[list[dict[str, float]], Tally, str]:
    fake, proxy, fake_url, proxy_url = start_processes()
    tally = Tally()
    rows: list[dict[str, float]] = []
    try:
        started = time.monotonic()
        stop_at = started + minutes * 60
        await asyncio.gather(
            sampler(proxy.pid, fake_url, started, stop_at, tally, rows),
            *(worker(proxy_url, stop_at, tally, seed) for seed in range(WORKERS)),
        )
        # let the last aborted streams and sockets wind down, then sample once more
        await asyncio.sleep(2 + WS_IDLE_SECONDS)
        await sampler(proxy.pid, fake_url, started, time.monotonic(), tally, rows)
    finally:
        proxy.terminate()
        fake.terminate()
        proxy.wait(10)
        fake.wait(10)
    note = (
        f"WebSocket scenario: FALPROXY_WS_IDLE_TIMEOUT={WS_IDLE_SECONDS:g}, "
        f"FALPROXY_WS_MESSAGE_RATE={WS_MESSAGE_RATE}, FALPROXY_WS_MAX_SOCKETS={WS_MAX_SOCKETS}; "
        f"{REALTIME_FRAMES} frames per realtime socket, {GREEDY_FRAMES} frames per greedy one."
    )
    return rows, tally, note


def write_results(
    rows: list[dict[str, float]], tally: Tally, note: str, minutes: float, out_dir: Path
) -> None:
    with (out_dir / "soak_results.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, out_dir)
    first, last = rows[0], rows[-1]
    warm = rows[min(len(rows) - 1, 12)]  # after one minute: imports and pools are warm
    peak_rss = max(row["rss_mib"] for row in rows)
    lines = [
        "# Soak results",
        "",
        f"`python bench/soak.py --minutes {minutes:g}`: {WORKERS} concurrent workers against",
        "`falproxy serve` in front of `falproxy fake --speed 0.05`, both as separate processes.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| duration | {last['seconds']:.0f} s |",
        f"| calls | {int(last['calls'])} ({json.dumps(dict(tally.calls))}) |",
        f"| client aborts mid-stream: HTTP / WebSocket | {int(last['aborts'])}"
        f" / {int(last['ws_aborts'])} |",
        f"| unexpected errors | {int(last['errors'])} {json.dumps(dict(tally.errors))} |",
        f"| proxy RSS: start / after 1 min / end / peak | {first['rss_mib']} / {warm['rss_mib']}"
        f" / {last['rss_mib']} / {peak_rss} MiB |",
        f"| proxy open fds: start / after 1 min / end | {first['fds']} / {warm['fds']}"
        f" / {last['fds']} |",
        f"| fake open streams / sockets at the end | {last['fake_open_streams']}"
        f" / {last['fake_open_sockets']} |",
        f"| machine load (1 min avg): start / end | {first['load1']:.1f} / {last['load1']:.1f}"
        f" ({os.cpu_count()} cores, shared) |",
        "",
        note,
        "",
        "![soak](soak_results.png)",
    ]
    if tally.error_samples:
        lines += ["", "Error samples:", "", *(f"- {sample}" for sample in tally.error_samples)]
    (out_dir / "soak_results.md").write_text("\n".join(lines) + "\n")


def plot(rows: list[dict[str, float]], out_dir: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "matplotlib"], check=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [row["seconds"] for row in rows]
    figure, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot(seconds, [row["rss_mib"] for row in rows])
    axes[0].set_ylabel("proxy RSS (MiB)")
    axes[0].set_ylim(bottom=0)
    axes[1].plot(seconds, [row["fds"] for row in rows], label="proxy fds")
    axes[1].plot(seconds, [row["fake_open_streams"] for row in rows], label="fake open streams")
    axes[1].plot(seconds, [row["fake_open_sockets"] for row in rows], label="fake open sockets")
    axes[1].legend()
    axes[2].plot(seconds, [row["calls"] for row in rows], label="calls")
    axes[2].plot(seconds, [row["errors"] for row in rows], label="unexpected errors")
    axes[2].plot(seconds, [row["aborts"] for row in rows], label="aborts")
    axes[2].legend()
    axes[2].set_xlabel("seconds")
    figure.suptitle("falproxy soak")
    figure.tight_layout()
    figure.savefig(out_dir / "soak_results.png", dpi=80)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--results-dir", type=Path, default=HERE)
    args = parser.parse_args()
    rows, tally, note = asyncio.run(soak(args.minutes))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    write_results(rows, tally, note, args.minutes, args.results_dir)
    print((args.results_dir / "soak_results.md").read_text())
    return 1 if sum(tally.errors.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
