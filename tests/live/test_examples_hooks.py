"""The README's hook examples (examples/hooks_*.py), each served for real before the fake."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import jwt

from examples import hooks_analytics, hooks_block_expensive, hooks_session_auth, hooks_tenant_key
from falproxy import FalCredential
from tests.conftest import TEST_KEY, proxy_config, serve
from tests.support.hook_support import ROUTE, bearer, run

SECRET = "example-jwt-secret-of-32-characters!"


def test_session_auth(fake_url: str) -> None:
    app = hooks_session_auth.create_app(proxy_config(fake_url))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert run(client, cookie="theme=dark; session=session-abc").status_code == 200
        assert run(client, cookie="session=forged").status_code == 401
        assert run(client).status_code == 401


def test_tenant_key(fake_url: str) -> None:
    config = proxy_config(
        fake_url, credential=FalCredential("shared-id:wrong-key"), auth_tokens=("acme", "globex")
    )
    app = hooks_tenant_key.create_app(config, {"token-1": FalCredential(TEST_KEY)})
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert run(client, **bearer("acme")).status_code == 200  # its own key
        assert run(client, **bearer("globex")).status_code == 401  # fal refused the default


def test_block_expensive(fake_url: str) -> None:
    app = hooks_block_expensive.create_app(proxy_config(fake_url, jwt_secret=SECRET))

    def token(plan: str) -> dict[str, str]:
        claims = {"sub": "u1", "plan": plan, "exp": int(time.time()) + 60}
        return bearer(jwt.encode(claims, SECRET, algorithm="HS256"))

    pro = "https://fal.run/fal-ai/flux-pro/v1.1"
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        blocked = run(client, pro, **token("free"))
        assert blocked.status_code == 402
        assert blocked.json() == {"detail": "This model needs the Pro plan"}
        assert run(client, pro, **token("pro")).status_code != 402  # relayed to fal
        assert run(client, **token("free")).status_code == 200  # cheap model: fine


def test_analytics(fake_url: str, tmp_path: Path) -> None:
    sink = tmp_path / "events.jsonl"
    app = hooks_analytics.create_app(proxy_config(fake_url, allow_anonymous=True), sink)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert run(client).status_code == 200
        assert client.post(ROUTE).status_code == 400
        deadline = time.monotonic() + 5
        while len(sink.read_text().splitlines() if sink.exists() else []) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    events = [json.loads(line) for line in sink.read_text().splitlines()]
    assert sorted(e["outcome"] for e in events) == ["ok", "refused"]
    assert TEST_KEY not in sink.read_text()
