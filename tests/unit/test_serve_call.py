"""relay/exchange.serve_call: a call cancelled because its client left ends quietly there."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from falproxy.relay.exchange import Exchange, serve_call


class _Left:
    """The one attribute serve_call reads of an exchange."""

    def __init__(self) -> None:
        self.client_left = False


async def _cancelled_call(exchange: _Left, *, client_left: bool) -> asyncio.Task[None]:
    started = asyncio.Event()
    finished: list[str] = []

    async def call() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.append("finally ran")  # the call's own cleanup runs in both cases

    task = asyncio.create_task(serve_call(call(), cast(Exchange, exchange)))
    await started.wait()
    exchange.client_left = client_left
    task.cancel()
    await asyncio.wait([task])
    assert finished == ["finally ran"]
    return task


async def test_a_call_cancelled_because_the_client_left_ends_quietly() -> None:
    task = await _cancelled_call(_Left(), client_left=True)
    assert not task.cancelled() and task.exception() is None
    assert task.cancelling() == 0  # uncancelled: the serving task goes on normally


async def test_any_other_cancellation_propagates() -> None:
    task = await _cancelled_call(_Left(), client_left=False)
    assert task.cancelled()
    with pytest.raises(asyncio.CancelledError):
        task.result()
