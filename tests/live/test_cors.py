"""CORS for a cross-origin sidecar, live: preflights, exposed headers, strangers."""

from __future__ import annotations

import pytest

from falproxy import ConfigError, ProxyConfig
from tests.support.hook_support import ROUTE, live_proxy, run

APP_ORIGIN = "http://127.0.0.1:5173"


def preflight(origin: str, headers: str) -> dict[str, str]:
    return {
        "origin": origin,
        "access-control-request-method": "POST",
        "access-control-request-headers": headers,
    }


def test_preflight_and_response_headers(fake_url: str) -> None:
    with live_proxy(fake_url, cors_origins=(APP_ORIGIN,), auth_tokens=("t",)) as client:
        asked = "content-type, x-fal-target-url, authorization, x-fal-queue-priority, x-evil"
        answer = client.options(ROUTE, headers=preflight(APP_ORIGIN, asked))
        assert answer.status_code == 204
        assert answer.headers["access-control-allow-origin"] == APP_ORIGIN
        granted = answer.headers["access-control-allow-headers"].split(", ")
        assert granted == [
            "content-type",
            "x-fal-target-url",
            "authorization",
            "x-fal-queue-priority",
        ]
        assert "POST" in answer.headers["access-control-allow-methods"]

        response = run(client, origin=APP_ORIGIN, authorization="Bearer t")
        assert response.status_code == 200
        # One Allow-Origin only: fal's own `*` is replaced by ours.
        assert response.headers.get_list("access-control-allow-origin") == [APP_ORIGIN]
        exposed = response.headers["access-control-expose-headers"]
        assert "x-fal-request-id" in exposed and "retry-after" in exposed

        refused = run(client, origin=APP_ORIGIN)  # errors are readable cross-origin too
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == APP_ORIGIN


def test_other_origins_get_nothing(fake_url: str) -> None:
    with live_proxy(fake_url, cors_origins=(APP_ORIGIN,), allow_anonymous=True) as client:
        stranger = "http://127.0.0.1:6666"
        answer = client.options(ROUTE, headers=preflight(stranger, "content-type"))
        assert answer.status_code == 403
        assert "access-control-allow-origin" not in answer.headers
        response = run(client, origin=stranger)
        assert "access-control-allow-origin" not in response.headers  # fal's `*` dropped


def test_without_cors_a_preflight_is_refused(fake_url: str) -> None:
    with live_proxy(fake_url, allow_anonymous=True) as client:
        answer = client.options(ROUTE, headers=preflight(APP_ORIGIN, "content-type"))
        assert answer.status_code == 405
        response = run(client, origin=APP_ORIGIN)
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def test_origin_setting_is_validated() -> None:
    with pytest.raises(ConfigError, match="cors_origins"):
        ProxyConfig(cors_origins=("example.com",))
