"""No leaks: 2,000 client aborts mid-stream leave no upstream stream, fd or memory behind."""

from __future__ import annotations

import httpx
import pytest

from tests.support.leak_check import abort_streams, run_aborts
from tests.support.live import wait_until
from tests.support.ports import free_port
from tests.support.procs import falproxy_serve, proxy_env

ABORTS = 2000
MAX_SECONDS = 150.0
FD_MARGIN = 10  # pooled keep-alive connections and the asyncio loop come and go
RSS_MARGIN_MIB = 25.0  # allocator noise; a leak of one stream per abort is far larger
QUIET_ABORTS = 40


def test_client_aborts_leave_nothing_open(proxy_url: str, fake: httpx.Client) -> None:
    report = run_aborts(proxy_url, fake, ABORTS, MAX_SECONDS)
    assert report.aborts == ABORTS, f"only {report.aborts} aborts in {MAX_SECONDS} s"
    assert report.fake_open_streams == 0
    assert report.gauge_after == 0
    assert report.fake_disconnected >= ABORTS * 0.95, "the fake did not see the aborts"
    assert report.fds_after <= report.fds_before + FD_MARGIN, report
    assert report.rss_after_mib <= report.rss_before_mib + RSS_MARGIN_MIB, report


@pytest.mark.parametrize("server", ["native", "asgi"])
def test_aborted_streams_end_quietly_on_both_servers(
    server: str, fake_url: str, fake: httpx.Client
) -> None:
    """A client that leaves mid-stream ends its call as ``client_gone``, with no traceback.

    The relay's cancellation unwinds the whole call and ends at the front end's entry
    (relay/exchange.serve_call); caught lower, inside the compiled hot path, it was raised
    again and every abort logged "Exception in ASGI application".
    """
    port = free_port()
    args = () if server == "native" else ("--server", "asgi")
    with falproxy_serve(proxy_env(fake_url), port, *args) as served:
        assert abort_streams(port, QUIET_ABORTS, MAX_SECONDS) == QUIET_ABORTS
        wait_until(lambda: fake.get("/__fake__/stats").json()["open_streams"] == 0, 30)
        log = served.stderr()
    assert "Traceback" not in log, log[-3000:]
    assert "Exception in ASGI application" not in log
    assert log.count("outcome=client_gone") == QUIET_ABORTS, log[-3000:]
