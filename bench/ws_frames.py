"""The WebSocket relay against its anchors, in one run (issue 21's WebSocket targets).

Paths, all on 127.0.0.1, each relay pinned to core 0 and everything else to core 1:

* straight: the load generator to a fast echo server (raw asyncio, this file's ``echo``);
* byte relay: a raw asyncio relay that copies bytes both ways (this file's ``byterelay``);
* nginx: Debian's nginx, WebSocket ``proxy_pass`` (Upgrade/Connection set);
* falproxy: ``falproxy serve`` (native front end) of this checkout: the frame relay;
* falproxy before: the same command with ``--before DIR`` first on ``PYTHONPATH`` (a
  checkout of main: the message relay, ``NativeSocket`` and the ``websockets`` client).

Scenarios:

* CPU per relayed message (median of RUNS, the paths interleaved): SOCKETS sockets echo
  1 KiB binary messages for SECONDS; the relay process's CPU time (user + system) divided
  by the messages it relayed (each round trip is two: one up, one down). Once without and once with the client offering
  permessage-deflate, as browsers do (the byte relay and nginx pass the offer on; the echo
  server declines it; falproxy never negotiates it);
* memory: IDLE sockets opened (handshake and one round trip each), the relay's RSS growth
  divided by IDLE, and the time to open them all (100 handshakes in flight at a time);
* latency: 100 sockets x 10 messages/s; added p50 round trip = relay p50 - straight p50;
* scale: 1,000 sockets x 10 messages/s for SCALE_SECONDS; errors are sockets closed or
  round trips not answered within 2 s.

Usage: python bench/ws_frames.py [--before /work/main] [--seconds 4] [--idle 1000]
Every process it starts is stopped by its pid; the table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.speedups import apply_mask

from bench import harness as h

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = "bench-key-id:bench-key-secret"
TARGET_PATH = "/fal-ai/echo/realtime"
DEFLATE_OFFER = b"sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"
PAYLOAD = os.urandom(1024)


# --- helper processes ---------------------------------------------------------------------


def accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def frame(opcode: int, payload: bytes, mask: bytes | None) -> bytes:
    size = len(payload)
    flag = 0x80 if mask else 0
    if size < 126:
        head = bytes((0x80 | opcode, flag | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, flag | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, flag | 127)) + size.to_bytes(8, "big")
    return head + mask + apply_mask(payload, mask) if mask else head + payload


def parse(buffer: bytearray) -> tuple[int, bytes, int] | None:
    """(opcode, unmasked payload, bytes used) of the first whole frame, or None."""
    if len(buffer) < 2:
        return None
    size, at = buffer[1] & 0x7F, 2
    if size == 126:
        if len(buffer) < 4:
            return None
        size, at = int.from_bytes(buffer[2:4], "big"), 4
    elif size == 127:
        if len(buffer) < 10:
            return None
        size, at = int.from_bytes(buffer[2:10], "big"), 10
    mask = None
    if buffer[1] & 0x80:
        mask, at = bytes(buffer[at : at + 4]), at + 4
    if len(buffer) < at + size:
        return None
    payload = bytes(buffer[at : at + size])
    return buffer[0] & 0x0F, apply_mask(payload, mask) if mask else payload, at + size


class EchoServer(asyncio.Protocol):
    """A fast WebSocket echo: any path, no extension, every data frame sent back."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buffer = bytearray()
        self.open = False

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.open:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            key = next(
                v.strip()
                for k, _, v in (x.partition(b":") for x in head)
                if k.lower() == b"sec-websocket-key"
            )
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
                b"sec-websocket-accept: " + accept_value(key) + b"\r\n\r\n"
            )
            del self.buffer[: end + 4]
            self.open = True
        out = []
        while (parsed := parse(self.buffer)) is not None:
            opcode, payload, used = parsed
            del self.buffer[:used]
            if opcode == 0x9:
                out.append(frame(0xA, payload, None))
            elif opcode == 0x8:
                out.append(frame(0x8, payload, None))
                self.transport.write(b"".join(out))
                self.transport.close()
                return
            elif opcode in (0x1, 0x2):
                out.append(frame(opcode, payload, None))
        if out:
            self.transport.write(b"".join(out))


class Pipe(asyncio.Protocol):
    """One side of the byte relay: what it reads, the peer writes; back-pressure both ways."""

    def __init__(self, peer: Pipe | None = None) -> None:
        self.peer = peer
        self.transport: Any = None
        self.early = bytearray()

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is None or self.peer.transport is None:
            self.early += data
        else:
            self.peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class RelayIn(Pipe):
    def __init__(self, upstream_port: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        transport.pause_reading()
        asyncio.get_running_loop().create_task(self.dial())

    async def dial(self) -> None:
        loop = asyncio.get_running_loop()
        _, out = await loop.create_connection(lambda: Pipe(self), "127.0.0.1", self.upstream_port)
        self.peer = out
        self.transport.resume_reading()


async def serve_forever(factory: Any, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        factory, "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


# --- the load generator -----------------------------------------------------------------


class Client(asyncio.Protocol):
    """One socket of the load: handshake, then round trips of one masked 1 KiB frame."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.buffer = bytearray()
        self.opened = asyncio.get_running_loop().create_future()
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.head)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.opened.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            ok = self.buffer.startswith(b"HTTP/1.1 101")
            del self.buffer[: end + 4]
            if not ok:
                self.opened.set_exception(ConnectionError("refused"))
                return
            self.opened.set_result(None)
        while (parsed := parse(self.buffer)) is not None:
            opcode, _, used = parsed
            del self.buffer[:used]
            if opcode in (0x1, 0x2) and self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)
            elif opcode == 0x8:
                self.closed = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for future in (self.opened, self.waiter):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("lost"))

    async def round_trip(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(frame(0x2, PAYLOAD, os.urandom(4)))
        await self.waiter


async def open_client(port: int, path: str, deflate: bool = False) -> Client:
    key = base64.b64encode(os.urandom(16))
    head = (
        (
            f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nupgrade: websocket\r\n"
            "connection: Upgrade\r\nsec-websocket-version: 13\r\n"
        ).encode()
        + b"sec-websocket-key: "
        + key
        + b"\r\n"
        + (DEFLATE_OFFER if deflate else b"")
        + b"\r\n"
    )
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: Client(head), "127.0.0.1", port)
    await asyncio.wait_for(client.opened, 30)
    return client


async def cpu_per_message(
    path: Any, sockets: int, seconds: float, deflate: bool
) -> tuple[float, float]:
    """(CPU µs per relayed message, messages/s)."""
    clients = [await open_client(path.port, path.path, deflate) for _ in range(sockets)]
    for client in clients:
        await client.round_trip()
    trips = 0
    stop = time.monotonic() + seconds

    async def loop(client: Client) -> None:
        nonlocal trips
        while time.monotonic() < stop:
            await client.round_trip()
            trips += 1

    cpu = h.cpu_seconds(path.pids)
    started = time.monotonic()
    await asyncio.gather(*(loop(c) for c in clients))
    wall = time.monotonic() - started
    used = h.cpu_seconds(path.pids) - cpu
    for client in clients:
        client.transport.close()
    await asyncio.sleep(0.3)
    return (used / (2 * trips) * 1e6 if path.pids else float("nan")), 2 * trips / wall


async def idle_memory(path: Any, count: int) -> tuple[float, float]:
    """(KiB per idle socket, seconds to open them all)."""
    warm = await open_client(path.port, path.path)
    await warm.round_trip()
    warm.transport.close()
    await asyncio.sleep(0.5)
    before = h.rss_kb(path.pids)
    started = time.monotonic()
    gate = asyncio.Semaphore(100)

    async def one() -> Client:
        async with gate:
            client = await open_client(path.port, path.path)
            await client.round_trip()
            return client

    clients = await asyncio.gather(*(one() for _ in range(count)))
    opening = time.monotonic() - started
    await asyncio.sleep(1.0)
    grown = h.rss_kb(path.pids) - before
    for client in clients:
        client.transport.close()
    await asyncio.sleep(1.0)
    return grown / count, opening


async def paced(path: Any, sockets: int, rate: float, seconds: float) -> tuple[list[float], int]:
    """Round-trip times (ms) of ``sockets`` x ``rate`` messages/s, and the errors."""
    gate = asyncio.Semaphore(100)

    async def opened() -> Client:
        async with gate:
            return await open_client(path.port, path.path)

    clients = await asyncio.gather(*(opened() for _ in range(sockets)))
    times: list[float] = []
    errors = 0
    start = time.monotonic() + 0.5

    async def run(n: int, client: Client) -> None:
        nonlocal errors
        tick = start + n / (sockets * rate)
        while tick < start + seconds:
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            sent = time.perf_counter()
            try:
                await asyncio.wait_for(client.round_trip(), 2.0)
            except (TimeoutError, ConnectionError):
                errors += 1
                return
            times.append((time.perf_counter() - sent) * 1000)
            tick += 1 / rate

    await asyncio.gather(*(run(n, c) for n, c in enumerate(clients)))
    errors += sum(c.closed for c in clients)
    for client in clients:
        client.transport.close()
    await asyncio.sleep(0.5)
    return times, errors


# --- the run ----------------------------------------------------------------------------------


class Path_:
    def __init__(self, name: str, port: int, path: str, pids: list[int]) -> None:
        self.name, self.port, self.path, self.pids = name, port, path, pids


def nginx_conf(tmp: Path, port: int, echo: int) -> Path:
    conf = tmp / "nginx.conf"
    conf.write_text(f"""
user root; daemon off; master_process off; worker_processes 1;
worker_rlimit_nofile 65536; pid {tmp}/nginx.pid; error_log {tmp}/error.log warn;
events {{ worker_connections 40000; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  server {{ listen 127.0.0.1:{port} backlog=8192;
    location / {{ proxy_pass http://127.0.0.1:{echo}; proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";
      proxy_read_timeout 300s; proxy_buffering off; }} }}
}}
""")
    return conf


def start(procs: h.Processes, args: argparse.Namespace, tmp: Path) -> list[Path_]:
    me = [sys.executable, str(Path(__file__).resolve())]
    ports = h.free_ports(["echo", "byte", "nginx", "falproxy", "before"])
    procs.start(h.LOAD_CORE, [*me, "echo", "--port", str(ports["echo"])])
    byte = procs.start(
        h.PROXY_CORE,
        [*me, "byterelay", "--port", str(ports["byte"]), "--upstream", str(ports["echo"])],
    )
    nginx = procs.start(
        h.PROXY_CORE, ["nginx", "-c", str(nginx_conf(tmp, ports["nginx"], ports["echo"]))]
    )
    served = []
    for name, root in (
        ("falproxy", Path(__file__).resolve().parent.parent),
        ("before", args.before),
    ):
        if root is None:
            continue
        env = {**os.environ, "FAL_KEY": KEY, "PYTHONPATH": str(root)}
        # -P: not the current folder first on sys.path, so PYTHONPATH picks the checkout.
        argv = [sys.executable, "-P", "-m", "falproxy.standalone.cli", "serve"]
        argv += ["--port", str(ports[name])]
        argv += [
            "--upstream",
            f"fal.run=http://127.0.0.1:{ports['echo']}",
            "--log-level",
            "warning",
        ]
        proc = procs.start(h.PROXY_CORE, argv, env=env)
        served.append((name, proc))
    for port in (ports["echo"], ports["byte"], ports["nginx"], *(ports[n] for n, _ in served)):
        wait_port(port)  # "before" only when --before names a checkout
    relayed = "/api/fal/proxy?fal_target_url=" + quote("wss://fal.run" + TARGET_PATH, safe="")
    paths = [
        Path_("straight (echo)", ports["echo"], TARGET_PATH, []),
        Path_("byte relay", ports["byte"], TARGET_PATH, [byte.pid]),
        Path_("nginx", ports["nginx"], TARGET_PATH, [nginx.pid]),
    ]
    for name, proc in served:
        label = "falproxy (frames)" if name == "falproxy" else "falproxy before (messages)"
        paths.append(Path_(label, ports[name], relayed, [proc.pid]))
    return paths


def wait_port(port: int) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port}")


async def measure(paths: list[Path_], args: argparse.Namespace) -> None:
    rows: dict[str, dict[str, Any]] = {p.name: {"cpu": [], "cpu_deflate": []} for p in paths}
    for run in range(args.runs):  # interleaved, so the machine's load hits every path alike
        for path in paths:
            h.log(f"{path.name}: cpu, run {run + 1}")
            for key, deflate in (("cpu", False), ("cpu_deflate", True)):
                used, _ = await cpu_per_message(path, args.sockets, args.seconds, deflate)
                rows[path.name][key].append(used)
    for row in rows.values():
        row["cpu"] = statistics.median(row["cpu"])
        row["cpu_deflate"] = statistics.median(row["cpu_deflate"])
    for path in paths:
        h.log(f"{path.name}: idle")
        rows[path.name]["idle"] = await idle_memory(path, args.idle)
        h.log(f"{path.name}: latency")
        times, errors = await paced(path, 100, 10, args.seconds)
        rows[path.name]["p50"] = statistics.median(times) if times else float("nan")
        rows[path.name]["latency_errors"] = errors
        if path.pids:
            h.log(f"{path.name}: scale")
            cpu = h.cpu_seconds(path.pids)
            started = time.monotonic()
            _, errors = await paced(path, 1000, 10, args.scale_seconds)
            load = (h.cpu_seconds(path.pids) - cpu) / (time.monotonic() - started)
            rows[path.name]["scale"] = (errors, load)
    straight = rows[paths[0].name]["p50"]
    byte = rows["byte relay"]["cpu"]
    print(
        f"sockets={args.sockets} seconds={args.seconds} runs={args.runs} (CPU: medians) "
        f"idle={args.idle} scale={args.scale_seconds}s"
    )
    print(
        "| path | CPU µs/msg | × byte relay | CPU µs/msg, deflate offered | × byte relay | "
        f"KiB per idle socket | open {args.idle:,} (s) | p50 RTT ms | added p50 ms | 1,000×10/s errors (relay CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for path in paths:
        row = rows[path.name]
        cpu, deflate = row["cpu"], row["cpu_deflate"]
        kib, opening = row["idle"]
        added = row["p50"] - straight
        scale = row.get("scale")
        scale_text = f"{scale[0]} ({scale[1] * 100:.0f}% of a core)" if scale else "-"
        print(
            f"| {path.name} | {cpu:.1f} | {cpu / byte:.2f} | {deflate:.1f} | {deflate / byte:.2f} | "
            f"{kib:.1f} | {opening:.2f} | {row['p50']:.3f} | {added:+.3f} | {scale_text} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    echo = sub.add_parser("echo")
    echo.add_argument("--port", type=int, required=True)
    relay = sub.add_parser("byterelay")
    relay.add_argument("--port", type=int, required=True)
    relay.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--before", type=Path, default=None, help="a checkout of main to compare")
    parser.add_argument("--sockets", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--scale-seconds", type=float, default=10.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3, help="CPU runs per path (medians)")
    args = parser.parse_args()
    h.raise_fd_limit()
    if args.command == "echo":
        asyncio.run(serve_forever(EchoServer, args.port))
    elif args.command == "byterelay":
        asyncio.run(serve_forever(lambda: RelayIn(args.upstream), args.port))
    else:
        os.sched_setaffinity(0, {int(h.LOAD_CORE)})
        procs = h.Processes()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                paths = start(procs, args, Path(tmp))
                asyncio.run(measure(paths, args))
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
