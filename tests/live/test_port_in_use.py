"""A port in use is reported first, in one line naming host and port (issue 19, item 3).

``falproxy serve`` used to print "serving ..." and "Application startup complete" before
uvicorn's bind error, and with ``--workers 2`` the error named no port. The parent now
binds the socket before announcing anything; its workers serve on that socket.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.support.cli import FALPROXY, clean_env
from tests.support.procs import stop

BIND_FAILURE = 3  # uvicorn's STARTUP_FAILURE, as before the change


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process (here: this one) is listening on."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--fake"], {}),
        (["--workers", "2"], {"FAL_KEY": "test-id:test-secret"}),
        (["--server", "asgi"], {"FAL_KEY": "test-id:test-secret"}),
        (["--fake"], {"FALPROXY_LOG_FORMAT": "json"}),
    ],
    ids=["fake", "two-workers", "asgi", "json"],
)
def test_a_port_in_use_is_the_first_and_only_line(
    taken_port: int, args: list[str], env: dict[str, str]
) -> None:
    command = [FALPROXY, "serve", "--host", "127.0.0.1", "--port", str(taken_port), *args]
    completed = subprocess.run(
        command, env=clean_env(**env), capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == BIND_FAILURE
    output = completed.stdout + completed.stderr
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert f"cannot listen on 127.0.0.1:{taken_port}: address already in use" in lines[0]
    assert "serving" not in output and "startup complete" not in output.lower()


def test_port_zero_announces_the_port_it_serves_on() -> None:
    command = [FALPROXY, "serve", "--host", "127.0.0.1", "--port", "0", "--fake"]
    process = subprocess.Popen(
        command, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        port = 0
        while not port and time.monotonic() < deadline:
            found = re.search(r"serving http://127\.0\.0\.1:(\d+)/", process.stdout.readline())
            port = int(found.group(1)) if found else 0
        assert port, "no serving line"
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert answer.status_code == 200
    finally:
        assert stop(process) == 0
        assert process.stdout is not None
        process.stdout.close()
