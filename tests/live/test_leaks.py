"""No leaks: 2,000 client aborts mid-stream leave no upstream stream, fd or memory behind."""

from __future__ import annotations

import httpx

from tests.support.leak_check import run_aborts

ABORTS = 2000
MAX_SECONDS = 150.0
FD_MARGIN = 10  # pooled keep-alive connections and the asyncio loop come and go
RSS_MARGIN_MIB = 25.0  # allocator noise; a leak of one stream per abort is far larger


def test_client_aborts_leave_nothing_open(proxy_url: str, fake: httpx.Client) -> None:
    report = run_aborts(proxy_url, fake, ABORTS, MAX_SECONDS)
    assert report.aborts == ABORTS, f"only {report.aborts} aborts in {MAX_SECONDS} s"
    assert report.fake_open_streams == 0
    assert report.gauge_after == 0
    assert report.fake_disconnected >= ABORTS * 0.95, "the fake did not see the aborts"
    assert report.fds_after <= report.fds_before + FD_MARGIN, report
    assert report.rss_after_mib <= report.rss_before_mib + RSS_MARGIN_MIB, report
