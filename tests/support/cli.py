"""Running the falproxy command line in tests: a clean environment, one-shot runs, servers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

FALPROXY = str(Path(sys.executable).parent / "falproxy")


RUN = {"x-fal-target-url": "https://fal.run/fal-ai/flux/dev", "content-type": "application/json"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "FALPROXY_"))}
    env.update(extra)
    return env


@contextmanager
def running(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    process = subprocess.Popen(
        [FALPROXY, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(process.communicate()[1])
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
        assert "Traceback" not in stderr


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FALPROXY, *args], env=env, capture_output=True, text=True, timeout=30)
