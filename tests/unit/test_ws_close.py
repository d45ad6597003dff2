"""The close-code table: reserved codes are never relayed, application codes are."""

from __future__ import annotations

import pytest

from falproxy.relay.socket.close import MAX_REASON_BYTES, RESERVED_CLOSE_CODES, relayed_close


@pytest.mark.parametrize(
    ("received", "sent"),
    [
        (1000, 1000),
        (1001, 1001),
        (1009, 1009),
        (1011, 1011),
        (4001, 4001),
        (3000, 3000),
        (1005, 1000),
        (1006, 1011),
        (1015, 1011),
        (None, 1000),
        (1004, 1011),
        (999, 1011),
        (2000, 1011),
        (5000, 1011),
    ],
)
def test_codes(received: int | None, sent: int) -> None:
    assert relayed_close(received, "why")[0] == sent


def test_reserved_codes_are_never_sent() -> None:
    assert all(relayed_close(code)[0] not in RESERVED_CLOSE_CODES for code in range(0, 6000))


def test_reasons_are_cut_to_fit_without_splitting_characters() -> None:
    _, reason = relayed_close(1000, "é" * 100)
    assert len(reason.encode()) <= MAX_REASON_BYTES
    assert reason == "é" * (MAX_REASON_BYTES // 2)
