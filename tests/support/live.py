"""Shared helpers for hardening tests: access-event capture, raw sockets, waiting."""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import httpx

from tests.conftest import TEST_KEY_SECRET

ROUTE = "/api/fal/proxy"
JSON = {"content-type": "application/json"}
_EVENT = re.compile(r"app=(?P<app>\S+) status=(?P<status>\S+) outcome=(?P<outcome>\S+)")


class EventLog(logging.Handler):
    """Collects the ``falproxy.access`` lines (one per call) emitted by proxies in any thread."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock:
            self.lines.append(record.getMessage())

    def for_app(self, app: str) -> list[tuple[str, str]]:
        """(status, outcome) of every event of ``app``, oldest first."""
        found = []
        with self._lock:
            lines = list(self.lines)
        for line in lines:
            match = _EVENT.search(line)
            if match and match["app"] == app:
                found.append((match["status"], match["outcome"]))
        return found

    def wait_for(self, app: str, timeout: float = 10.0) -> tuple[str, str]:
        """The first event of ``app``, waiting for it to be logged."""
        wait_until(lambda: bool(self.for_app(app)), timeout)
        return self.for_app(app)[0]


@contextmanager
def capture_events() -> Iterator[EventLog]:
    handler = EventLog()
    access = logging.getLogger("falproxy.access")
    previous = access.level
    access.setLevel(logging.INFO)
    access.addHandler(handler)
    try:
        yield handler
    finally:
        access.removeHandler(handler)
        access.setLevel(previous)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def raw_request(
    base_url: str, data: bytes, *, timeout: float = 10.0, shutdown_write: bool = False
) -> bytes:
    """Send raw bytes to the server at ``base_url``; everything it answers until it closes.

    For requests httpx refuses to build (duplicate lengths, CR/LF in header values, ...).
    Stops early once a response with a ``Content-Length`` is complete (keep-alive).
    ``shutdown_write`` closes the sending side after ``data``, as a client whose body ends
    early does.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        # The server may answer and close before reading everything.
        with suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if shutdown_write:
                sock.shutdown(socket.SHUT_WR)
        received = b""
        while not _complete(received):
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    return received


def drip_request(
    base_url: str, head_bytes: bytes, *, interval: float, limit: float
) -> tuple[bytes, float]:
    """Send ``head_bytes``, then one body byte every ``interval`` until the server answers.

    Returns what the server answered and how long after the head it did. Bounded: stops
    dripping after ``limit`` seconds.
    """
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=limit) as sock:
        sock.sendall(head_bytes)
        started = time.monotonic()
        while time.monotonic() - started < limit:
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                break
            with suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b" ")
        answered = time.monotonic() - started
        received = b""
        while not _complete(received):
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            received += chunk
    return received, answered


def _complete(raw: bytes) -> bool:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            return body.endswith(b"0\r\n\r\n")
    return False


def open_socket(base_url: str, timeout: float = 10.0) -> socket.socket:
    host, port = base_url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


def status_of(raw: bytes) -> int:
    """The status code of a raw HTTP/1.1 response (0 when the server sent nothing)."""
    if not raw:
        return 0
    return int(raw.split(b" ", 2)[1])


def head(method: str, target: str, *extra: str, body: bytes = b"", route: str = ROUTE) -> bytes:
    """A raw request to the proxy route with ``target`` in ``x-fal-target-url``."""
    lines = [f"{method} {route} HTTP/1.1", "host: 127.0.0.1", f"x-fal-target-url: {target}"]
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names; the last of repeats) and body of a raw HTTP/1.1
    response, its chunked framing removed."""
    head_bytes, _, body = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _dechunk(body)
    return status_of(raw), headers, body


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def target(url: str, **extra: str) -> dict[str, str]:
    """Headers of a JSON call to ``url`` through the proxy."""
    return {"x-fal-target-url": url, **JSON, **extra}


def assert_no_key(response: httpx.Response) -> None:
    """The key is in neither the body nor any header of ``response``."""
    assert TEST_KEY_SECRET not in response.text
    assert all(TEST_KEY_SECRET not in value for value in response.headers.values())
