"""The test suite's own rules: one tier per test, and the fake mapped as fake mode maps it."""

from __future__ import annotations

import tomllib

import pytest

from falproxy.config.fake_mode import fake_upstreams as fake_mode_upstreams
from falproxy.config.parsing import upstream_pairs
from falproxy.core.targets import MAPPABLE_HOSTS
from tests.conftest import CORE_LIVE_MODULES, NODE_MODULES, TESTS, fake_upstreams
from tests.support.procs import upstreams_env

TIERS = ("unit", "live", "contract", "deploy", "browser")


def test_every_collected_test_has_exactly_one_tier(request: pytest.FixtureRequest) -> None:
    for item in request.session.items:
        tiers = [tier for tier in TIERS if item.get_closest_marker(tier) is not None]
        assert len(tiers) == 1, (item.nodeid, tiers)
        if item.get_closest_marker("core") is not None:
            assert tiers == ["live"], item.nodeid


def test_this_test_is_a_unit_test(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("core") is None


def test_the_named_modules_exist_and_every_marker_is_registered() -> None:
    for module in CORE_LIVE_MODULES | NODE_MODULES:
        assert (TESTS / module).is_file(), module
    pyproject = tomllib.loads((TESTS.parent / "pyproject.toml").read_text())
    registered = {
        line.partition(":")[0] for line in pyproject["tool"]["pytest"]["ini_options"]["markers"]
    }
    assert registered == {*TIERS, "core"}


def test_the_tests_map_every_fal_host_to_the_fake_as_fake_mode_does() -> None:
    base = "http://127.0.0.1:9000"
    assert fake_upstreams(base) == fake_mode_upstreams(base)
    assert set(fake_upstreams(base)) == MAPPABLE_HOSTS  # fal's hosts and their backups
    assert upstream_pairs(upstreams_env(base)) == fake_upstreams(base)
