"""A real ``redis-server`` on a free loopback port with persistence off.

The one way the tests start Redis: the ``redis_server`` fixture (one server per test) and
:func:`running_redis` (a context manager, for a topology or a test that stops it midway).
Debian's ``redis-server`` is installed by ``scripts/test``; test modules that only skip
without it import ``pytestmark`` (the skip rule).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.ports import free_port

# Debian installs it in /usr/bin; /usr/sbin is not on every PATH.
REDIS_SERVER = shutil.which("redis-server") or next(
    (p for p in ("/usr/sbin/redis-server", "/usr/bin/redis-server") if os.path.exists(p)), None
)
START_TIMEOUT = 30.0

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (scripts/test installs Debian's redis-server)",
)


class RedisServer:
    """One ``redis-server`` process: ``port``, ``url``, and ``process`` once started."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if REDIS_SERVER is None:
            pytest.fail("redis-server is not installed; ./scripts/test installs it with apt-get")
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        args += ["--loglevel", "warning"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT
        while not self._answers_ping():
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped on exit (also when a test stopped it)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server
