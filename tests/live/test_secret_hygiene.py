"""The key never leaves: the suite-wide scan works, and bad keys stop start-up silently.

``conftest.ScanForKey`` wraps every served app; these tests prove it catches a key in a
response header, split across body chunks, and in an escaping exception's text, so a
green suite means no response of any test carried the key.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import KEY_SIGHTINGS, TEST_KEY, TEST_KEY_SECRET, serve
from tests.support.cli import clean_env, run
from tests.support.ports import free_port


def leaky_app(mode: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        secret = TEST_KEY_SECRET.encode()
        if mode == "exception":
            raise RuntimeError(f"upstream said {TEST_KEY}")
        headers = [(b"x-debug", secret)] if mode == "header" else []
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        half = len(secret) // 2
        if mode == "split-body":
            await send(
                {"type": "http.response.body", "body": b"a" + secret[:half], "more_body": True}
            )
            await send({"type": "http.response.body", "body": secret[half:] + b"z"})
        else:
            await send({"type": "http.response.body", "body": b"nothing here"})

    return app


@pytest.mark.parametrize(
    ("mode", "caught"),
    [
        ("header", True),
        ("split-body", True),
        ("exception", True),
        ("clean", False),
    ],
)
def test_the_scan_sees_every_way_out(mode: str, caught: bool, no_key_in_logs: Any) -> None:
    with serve(leaky_app(mode), lifespan="off") as url:
        httpx.get(url + "/")
    sightings = KEY_SIGHTINGS.copy()
    # This test leaks on purpose: the autouse fixture would fail it otherwise.
    KEY_SIGHTINGS.clear()
    no_key_in_logs.lines.clear()
    assert bool(sightings) is caught


@pytest.mark.parametrize(
    "key", ["", "   ", "id:topsecretvalue\n", "id:topsecretvalue\r\n", "\tid:topsecretvalue"]
)
@pytest.mark.parametrize("command", ["check", "serve"])
def test_a_bad_key_stops_start_up_without_printing_it(command: str, key: str) -> None:
    args = [command] if command == "check" else [command, "--port", str(free_port())]
    completed = run(args, clean_env(FAL_KEY=key))
    assert completed.returncode != 0
    assert "topsecretvalue" not in completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr
