"""The fake_url setting (FALPROXY_FAKE_URL): every fal host to the fake, with the fake's key."""

from __future__ import annotations

from falproxy import FalCredential, ProxyConfig
from falproxy.config.fake_mode import FAKE_HOST_PATHS, with_fake_mode
from falproxy.core.keys import FAKE_CREDENTIAL_VALUE
from tests.conftest import TEST_KEY


def test_every_fal_host_goes_to_the_fake_with_the_fakes_key() -> None:
    config = with_fake_mode(
        ProxyConfig.from_env({"FAL_KEY": TEST_KEY, "FALPROXY_FAKE_URL": "http://127.0.0.1:9000/"})
    )
    assert set(config.upstreams) == set(FAKE_HOST_PATHS)
    assert config.upstreams["queue.fal.run"] == "http://127.0.0.1:9000/queue"
    assert config.credential == FalCredential(FAKE_CREDENTIAL_VALUE), "FAL_KEY is never sent"


def test_no_key_is_needed_with_a_fake_url() -> None:
    config = ProxyConfig.from_env({"FALPROXY_FAKE_URL": "http://127.0.0.1:9000"})
    assert with_fake_mode(config).require_credential().reveal() == FAKE_CREDENTIAL_VALUE


def test_without_a_fake_url_nothing_changes() -> None:
    config = with_fake_mode(ProxyConfig.from_env({"FAL_KEY": TEST_KEY}))
    assert config.fake_url is None and not config.upstreams
    assert config.credential == FalCredential(TEST_KEY)
