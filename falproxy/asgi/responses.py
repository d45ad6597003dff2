"""The one way the ASGI front end writes an answer of its own."""

from __future__ import annotations

from falproxy.core.answers import Answer
from falproxy.core.types import Send


async def send_answer(send: Send, answer: Answer) -> None:
    """Write ``answer`` (a refusal, a hook's reply, a preflight, an ops endpoint)."""
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})
