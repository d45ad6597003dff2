"""The fake fal's realtime socket, called directly (no proxy) over real sockets."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from falproxy.fake import create_fake_app
from tests.conftest import TEST_KEY, serve
from tests.support.ws_helpers import (
    PNG_SIGNATURE,
    direct_url,
    last_session,
    pack,
    unpack,
)

KEY = {"authorization": f"Key {TEST_KEY}"}
UNAUTHORIZED = {"status": "error", "error": "Unauthorized"}
# These tests hold the key like a server would; websockets logs handshake headers at DEBUG.
QUIET = logging.getLogger("tests.fal_side")
QUIET.setLevel(logging.INFO)


def dial(url: str, **kwargs: Any) -> ClientConnection:
    return connect(url, logger=QUIET, **kwargs)


def closed_code(ws: ClientConnection) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    return info.value.rcvd.code


def test_msgpack_input_gets_a_msgpack_result(fake_rt: str) -> None:
    with dial(direct_url(fake_rt), additional_headers=KEY) as ws:
        ws.send(pack({"prompt": "a fox", "seed": 7, "request_id": "abc"}))
        result = unpack(ws.recv(timeout=10))
    image = result["images"][0]
    assert image["content"].startswith(PNG_SIGNATURE)
    assert (image["width"], image["height"], image["content_type"]) == (512, 512, "image/png")
    assert (result["seed"], result["request_id"]) == (7, "abc")
    assert last_session(fake_rt)["auth"] == "key"


def test_json_mode_through_the_subprotocol(fake_rt: str) -> None:
    with dial(direct_url(fake_rt), additional_headers=KEY, subprotocols=["x-fake-json"]) as ws:  # type: ignore[list-item]
        ws.send(json.dumps({"prompt": "x", "with_timings": True}))
        result, timings = json.loads(ws.recv(timeout=10)), json.loads(ws.recv(timeout=10))
        ws.send(b"\x80")  # binary in JSON mode: an error frame, the session stays open
        assert json.loads(ws.recv(timeout=10))["error"] == "UNSUPPORTED_FRAME"
    assert result["images"][0]["url"].startswith("data:image/png;base64,")
    assert timings == {"type": "x-fal-message", "action": "timings", "timing": 0.071}


@pytest.mark.parametrize("headers", [{}, {"authorization": "Key wrong:key"}])
def test_without_a_valid_key_the_session_is_unauthorized(
    fake_rt: str, headers: dict[str, str]
) -> None:
    with dial(direct_url(fake_rt), additional_headers=headers) as ws:
        assert json.loads(ws.recv(timeout=10)) == UNAUTHORIZED
        assert closed_code(ws) == 1000


def test_tokens_minted_by_the_fake_grant_their_alias_only(fake_rt: str) -> None:
    body = {"allowed_apps": ["fast-lcm-diffusion"], "token_expiration": 60}
    token = httpx.post(f"{fake_rt}/rest/tokens/", json=body, headers=KEY).json()
    with dial(direct_url(fake_rt, query=f"fal_jwt_token={token}")) as ws:
        ws.send(pack({"prompt": "x"}))
        assert unpack(ws.recv(timeout=10))["images"]
    with dial(direct_url(fake_rt, "fal-ai/other", f"fal_jwt_token={token}")) as ws:
        assert json.loads(ws.recv(timeout=10)) == UNAUTHORIZED
    assert "fal_jwt_token=***" in last_session(fake_rt)["query"]


def test_text_frames_in_msgpack_mode_get_an_error_frame(fake_rt: str) -> None:
    with dial(direct_url(fake_rt), additional_headers=KEY) as ws:
        ws.send("hello")
        assert json.loads(ws.recv(timeout=10))["type"] == "x-fal-error"
        ws.send(pack({"prompt": "still here"}))
        assert unpack(ws.recv(timeout=10))["images"]


def test_invalid_msgpack_is_an_internal_error_and_1011(fake_rt: str) -> None:
    with dial(direct_url(fake_rt), additional_headers=KEY) as ws:
        ws.send(b"\xc1")  # never valid in msgpack
        assert json.loads(ws.recv(timeout=10))["error"] == "INTERNAL_ERROR"
        assert closed_code(ws) == 1011


def test_max_buffering_out_of_range_is_refused(fake_rt: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        dial(direct_url(fake_rt, query="max_buffering=61"), additional_headers=KEY)
    assert info.value.response.status_code == 422


def test_idle_sessions_get_a_timeout_frame_and_close() -> None:
    app = create_fake_app(speed=0.05)
    app.state.realtime.idle_seconds = 0.5
    with serve(app, lifespan="off") as url, dial(direct_url(url), additional_headers=KEY) as ws:
        started = time.monotonic()
        ws.send(pack({"prompt": "x"}))
        ws.recv(timeout=10)
        error = json.loads(ws.recv(timeout=30))
        assert closed_code(ws) == 1000
        assert time.monotonic() - started >= 0.4
    assert error["error"] == "TIMEOUT"


def test_sessions_stay_open_for_fals_ten_seconds_whatever_the_speed() -> None:
    assert create_fake_app(speed=0.01).state.realtime.idle_seconds == 10.0


def test_the_fake_closes_with_the_code_it_is_asked_for(fake_rt: str) -> None:
    with dial(direct_url(fake_rt), additional_headers=KEY) as ws:
        ws.send(pack({"fake_close_code": 4321}))
        assert closed_code(ws) == 4321
