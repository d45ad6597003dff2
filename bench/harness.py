"""Benchmark plumbing: installing the tools, starting pinned processes, wrk, RSS.

Every process the benchmark starts is tracked here and killed by its own pid at the end;
nothing binds anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

NODE_PACKAGES = ["@fal-ai/server-proxy@1.2.1", "express@5"]
PROXY_CORE = "0"  # the proxy under test
LOAD_CORE = "1"  # wrk, the stubs and the Python probes


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ensure_system_tools() -> None:
    """Debian's nginx and wrk, installed with apt when missing."""
    missing = [tool for tool in ("nginx", "wrk") if not shutil.which(tool)]
    if not shutil.which("nginx") and Path("/usr/sbin/nginx").exists():
        os.environ["PATH"] += ":/usr/sbin"
        missing = [tool for tool in missing if tool != "nginx"]
    if missing:
        log(f"installing {missing} with apt")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True)


def ensure_node_proxy(folder: Path) -> Path:
    """``@fal-ai/server-proxy`` 1.2.1 and Express 5 from npm, cached in ``folder``.

    ``--legacy-peer-deps``: the proxy declares an optional peer of Express 4, but its
    Express adapter runs on Express 5 (what a new app installs today).
    """
    modules = folder / "node_modules"
    if not (modules / "@fal-ai" / "server-proxy").exists() or not (modules / "express").exists():
        folder.mkdir(parents=True, exist_ok=True)
        log(f"installing {NODE_PACKAGES} into {folder}")
        (folder / "package.json").write_text('{"name": "falproxy-bench", "private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--legacy-peer-deps", *NODE_PACKAGES],
            cwd=folder,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return modules


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def free_ports(names: list[str]) -> dict[str, int]:
    """A distinct free port per name: every probe stays bound until all are chosen, so the
    kernel cannot hand the same port out twice (two systems on one port measure one)."""
    probes = []
    try:
        for _ in names:
            probe = socket.socket()
            probe.bind(("127.0.0.1", 0))
            probes.append(probe)
        return {name: probe.getsockname()[1] for name, probe in zip(names, probes, strict=True)}
    finally:
        for probe in probes:
            probe.close()


def raise_fd_limit() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@dataclass
class Processes:
    """The processes started by this run, stopped by pid in reverse order."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self,
        cores: str,
        argv: list[str],
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            ["taskset", "-c", cores, *argv],
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if proc in self.started:
            self.started.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.started)):
            self.stop(proc)


def wait_http(
    url: str,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    context: ssl.SSLContext | None = None,
) -> None:
    """Until ``url`` answers 2xx (an https one verified with ``context``), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2, context=context) as response:
                response.read()
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up: {exc}") from None
            time.sleep(0.1)


def rss_kb(pids: list[int]) -> int:
    """Resident memory of the given processes and their children, in KiB."""
    total = 0
    for pid in pids + children_of(pids):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def children_of(pids: list[int]) -> list[int]:
    found: list[int] = []
    for pid in pids:
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        found.extend(int(kid) for kid in kids)
    return found + (children_of(found) if found else [])


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the processes and their children."""
    ticks = 0
    for pid in pids + children_of(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (stat fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


class RssSampler:
    """The peak RSS of some processes while a block runs, sampled every 50 ms."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kb(self.pids))
            self._stop.wait(0.05)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class WrkResult:
    rps: float
    p99_ms: float
    errors: int  # socket errors (connect, read, write, timeout) and non-2xx answers
    requests: int
    cpu_seconds: float = 0.0  # CPU the proxy used during the run (0 when not measured)

    @property
    def per_cpu_second(self) -> float:
        """Requests per CPU-second of the proxy: what a core costs, whatever the load."""
        return self.requests / self.cpu_seconds if self.cpu_seconds else float("nan")


def wrk(
    url: str, *, conns: int, seconds: float, headers: dict[str, str], script: Path | None = None
) -> WrkResult:
    argv = [
        "taskset",
        "-c",
        LOAD_CORE,
        "wrk",
        "-t1",
        f"-c{conns}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "5s",
    ]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script:
        argv += ["-s", str(script)]
    done = subprocess.run([*argv, url], capture_output=True, text=True, timeout=seconds + 60)
    if "Requests/sec" not in done.stdout:
        raise RuntimeError(f"wrk failed: {done.stdout} {done.stderr}")
    return parse_wrk(done.stdout)


def parse_wrk(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = 0
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        errors += int(non2xx.group(1))
    return WrkResult(rps, p99_ms, errors, requests)


def median_result(results: list[WrkResult]) -> WrkResult:
    return WrkResult(
        rps=statistics.median(r.rps for r in results),
        p99_ms=statistics.median(r.p99_ms for r in results),
        errors=sum(r.errors for r in results),
        requests=sum(r.requests for r in results),
        cpu_seconds=sum(r.cpu_seconds for r in results),
    )


def machine_info() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])

    def version(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout + done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"

    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": f"{mem_kb // 1024} MiB",
        "kernel": os.uname().release,
        "python": sys.version.split()[0],
        "node": version(["node", "--version"]),
        "nginx": version(["nginx", "-v"]),
        "wrk": version(["wrk", "--version"]),
        "load average": Path("/proc/loadavg").read_text().strip(),
    }
