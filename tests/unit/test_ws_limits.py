"""SocketLimits (falproxy/admission/ws_limits.py) with memory storage: no sockets needed."""

from __future__ import annotations

import pytest

from falproxy.admission.ws_limits import SocketLimits
from falproxy.core.errors import TooManySockets


def test_socket_slots_per_caller_are_bounded_and_always_given_back() -> None:
    limits = SocketLimits(message_rate=None, max_sockets=2)
    with limits.socket("alice", "10.0.0.1"), limits.socket("alice", "10.0.0.2"):
        with pytest.raises(TooManySockets) as info, limits.socket("alice", "10.0.0.3"):
            pass
        assert info.value.status == 429
        with limits.socket(None, "10.0.0.1"):  # anonymous: keyed by address instead
            assert limits.open_sockets(None, "10.0.0.1") == 1
        assert limits.open_sockets("alice", "") == 2
    with pytest.raises(RuntimeError), limits.socket("alice", ""):
        raise RuntimeError("the relay failed")
    assert limits.open_sockets("alice", "") == 0
    assert limits._open == {}  # no entry is kept for callers without sockets


def test_unlimited_by_default() -> None:
    limits = SocketLimits(message_rate=None, max_sockets=None)
    assert limits.message_check("alice", "") is None
    with limits.socket("alice", ""), limits.socket("alice", ""), limits.socket("alice", ""):
        pass


async def test_the_message_rate_is_per_caller() -> None:
    limits = SocketLimits(message_rate="2/minute", max_sockets=None)
    alice, bob = limits.message_check("alice", "1"), limits.message_check("bob", "1")
    assert alice is not None and bob is not None
    assert [await alice(), await alice(), await alice()] == [True, True, False]
    assert await bob()
    anonymous = limits.message_check(None, "10.0.0.9")
    assert anonymous is not None and await anonymous()
    await limits.aclose()


def test_anonymous_ipv6_callers_share_slots_per_prefix() -> None:
    limits = SocketLimits(message_rate=None, max_sockets=1, ipv6_prefix=64)
    with limits.socket(None, "2001:db8:1:2::a"):
        # Same /64: one host, one budget.
        with pytest.raises(TooManySockets), limits.socket(None, "2001:db8:1:2::b"):
            pass
        with limits.socket(None, "2001:db8:1:3::a"):  # another /64
            assert limits.open_sockets(None, "2001:db8:1:2::ffff") == 1
