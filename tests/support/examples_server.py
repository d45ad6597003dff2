"""Run an example app for real: its own server process on a free loopback port.

Each example is started exactly as its docstring says (uvicorn, gunicorn with threaded
workers, ``flask run``), configured only through the environment, in front of the fake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from tests.conftest import TEST_KEY, TEST_KEY_SECRET, fake_upstreams
from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GTHREAD = ["--worker-class", "gthread", "--threads", "4", "--workers", "1"]
# Every example, under every server its docs name: {name: argv after "python -m"}.
SERVERS: dict[str, list[str]] = {
    "fastapi-uvicorn": ["uvicorn", "examples.fastapi_app:app", "--host", "127.0.0.1"],
    "fastapi-router-uvicorn": [
        "uvicorn",
        "examples.fastapi_router_app:app",
        "--host",
        "127.0.0.1",
    ],
    "django-uvicorn": [
        "uvicorn",
        "examples.django_project.asgi:application",
        "--host",
        "127.0.0.1",
    ],
    "django-uvicorn-view": [
        "uvicorn",
        "examples.django_project.asgi:django_application",
        "--host",
        "127.0.0.1",
    ],
    "django-gunicorn": ["gunicorn", *GTHREAD, "examples.django_project.wsgi:application"],
    "flask-run": ["flask", "--app", "examples.flask_app", "run", "--host", "127.0.0.1"],
    "flask-gunicorn": ["gunicorn", *GTHREAD, "examples.flask_app:app"],
}
# Not in SERVERS: the standalone server, for comparisons (it serves /healthz, not "/");
# `falproxy serve` as its docs say (the console script; "--port" is appended); the Starlette
# example, whose plain mount answers at the route plus "/" (tests/contract knows its route).
EXTRA_SERVERS = {
    "standalone": ["uvicorn", "--factory", "falproxy.standalone.server:app_from_env"],
    "falproxy-serve": ["falproxy", "serve", "--host", "127.0.0.1"],
    "falproxy-serve-asgi": ["falproxy", "serve", "--host", "127.0.0.1", "--server", "asgi"],
    "starlette-uvicorn": ["uvicorn", "examples.starlette_app:app", "--host", "127.0.0.1"],
}
FALPROXY = str(Path(sys.executable).parent / "falproxy")
# Apps the examples may call: proves FALPROXY_* settings reach every framework.
ALLOWED_ENDPOINTS = "fal-ai/flux/**,fake/**"
START_TIMEOUT = 30.0



def argv(name: str, port: int) -> list[str]:
    command = (SERVERS | EXTRA_SERVERS)[name]
    if command[0] == "falproxy":
        return [FALPROXY, *command[1:], "--port", str(port)]
    args = [sys.executable, "-m", *command]
    if args[2] == "gunicorn":
        return [*args[:3], "--bind", f"127.0.0.1:{port}", *args[3:]]
    return [*args, "--port", str(port)]


def example_env(fake_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(
        FAL_KEY=TEST_KEY,
        FALPROXY_UPSTREAMS=",".join(f"{h}={b}" for h, b in fake_upstreams(fake_url).items()),
        FALPROXY_ALLOWED_ENDPOINTS=ALLOWED_ENDPOINTS,
        FALPROXY_UPSTREAM_TIMEOUT="10",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)  # may override the defaults above
    return env


@dataclass
class Running:
    """A started server: its base URL and everything it has printed so far."""

    name: str
    url: str
    output: IO[bytes]

    def log(self) -> str:
        """The server's stdout and stderr up to now."""
        self.output.flush()
        with open(self.output.name, "rb") as reader:
            return reader.read().decode("utf-8", errors="replace")


def documented_env(**variables: str) -> dict[str, str]:
    """What a user's shell gives a documented command: no fal or falproxy variable but
    ``variables`` (no key, no upstream mapping)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(PYTHONUNBUFFERED="1", **variables)
    return env


@contextmanager
def start_server(
    name: str,
    fake_url: str,
    *,
    ready_path: str = "/",
    output_sink: list[str] | None = None,
    env: dict[str, str] | None = None,
    **extra_env: str,
) -> Iterator[Running]:
    """Start the server ``name`` (an example, or one of EXTRA_SERVERS); checks its output for
    the key once it has stopped.

    ``env`` replaces the default environment (the test key, fal hosts mapped to
    ``fake_url``). The server's whole output is appended to ``output_sink`` once it has
    stopped.
    """
    port = free_port()
    with tempfile.NamedTemporaryFile(prefix=f"falproxy-{name}-", suffix=".log") as output:
        process = subprocess.Popen(
            argv(name, port),
            cwd=ROOT,
            env=env if env is not None else example_env(fake_url, **extra_env),
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        running = Running(name, f"http://127.0.0.1:{port}", output)
        try:
            _wait_until_up(process, running.url + ready_path, output)
            yield running
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log = running.log()
            if output_sink is not None:
                output_sink.append(log)
        assert TEST_KEY_SECRET not in log, f"{name} printed the fal key"


@contextmanager
def run_example(
    name: str,
    fake_url: str,
    *,
    ready_path: str = "/",
    output_sink: list[str] | None = None,
    env: dict[str, str] | None = None,
    **extra_env: str,
) -> Iterator[str]:
    """Start the example server ``name``; yields its base URL; checks its output for the key.

    The server's whole output is appended to ``output_sink`` once it has stopped.
    """
    with start_server(
        name, fake_url, ready_path=ready_path, output_sink=output_sink, env=env, **extra_env
    ) as running:
        yield running.url


def _wait_until_up(process: subprocess.Popen[bytes], url: str, output: object) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)  # type: ignore[attr-defined]
            raise RuntimeError(f"server exited: {output.read().decode()[-2000:]}")  # type: ignore[attr-defined]
        try:
            status = httpx.get(url, timeout=2).status_code
            if status == 200:
                return
            if status >= 500:  # up, but broken: no use waiting
                output.seek(0)  # type: ignore[attr-defined]
                log = output.read().decode()[-2000:]  # type: ignore[attr-defined]
                raise RuntimeError(f"server answered {status} on {url}: {log}")
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer on {url} within {START_TIMEOUT}s")
