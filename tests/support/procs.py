"""Real processes for the deployment tests: falproxy serve, redis-server, waits on ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEY
from tests.support.ports import free_port

FALPROXY = str(Path(sys.executable).parent / "falproxy")
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 30.0



def upstreams_env(fake_url: str) -> str:
    return f"fal.run={fake_url}/run,queue.fal.run={fake_url}/queue,rest.fal.ai={fake_url}/rest"


def proxy_env(fake_url: str, **extra: str) -> dict[str, str]:
    """A clean environment: the test key, fal hosts mapped to the fake, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(FAL_KEY=TEST_KEY, FALPROXY_UPSTREAMS=upstreams_env(fake_url), **extra)
    return env


def wait_until_up(url: str, process: subprocess.Popen[str] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before answering")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"{url} did not answer in time"
            time.sleep(0.1)


@dataclass
class Served:
    """A running ``falproxy serve`` and the file its stdout and stderr go to."""

    process: subprocess.Popen[str]
    log: Path

    def stderr(self) -> str:
        """Everything printed so far (stdout and stderr, as the terminal would show)."""
        return self.log.read_text()


@contextmanager
def falproxy_serve(
    env: dict[str, str], port: int, *args: str, executable: str | Path = FALPROXY
) -> Iterator[Served]:
    """``falproxy serve`` on a loopback port; stopped with SIGTERM (if still running) at exit.

    ``executable``: another installation's ``falproxy`` (tests/support/image_venv.py).
    """
    command = [str(executable), "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "stderr.log"
        with open(log, "w") as sink:
            # stdout too: every line falproxy prints is checked (tests/live/test_logs.py).
            process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink, text=True)
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
            yield Served(process, log)
        finally:
            stop(process)


@contextmanager
def falproxy_fake(port: int, *args: str) -> Iterator[str]:
    """``falproxy fake`` on a loopback port (its own process, as users start it); its URL."""
    command = [FALPROXY, "fake", "--host", "127.0.0.1", "--port", str(port), *args]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, process)
        yield url
    finally:
        stop(process, timeout=10)


def stop(process: subprocess.Popen[str], timeout: float = 40.0) -> int:
    """SIGTERM and wait; kill only if it hangs. Returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return process.returncode


def need(binary: str) -> str:
    """The path of a system binary ``scripts/test`` installs; a clear failure if missing."""
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if os.path.exists(p)), None
    )
    if path is None:
        pytest.fail(f"{binary} is not installed; ./scripts/test installs it with apt-get")
    return path


@contextmanager
def redis_server() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """A real ``redis-server`` on a loopback port, no persistence."""
    port = free_port()
    command = [need("redis-server"), "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--loglevel", "warning"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield port, process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=10)
