"""The one way the ASGI front end writes an answer of its own, and CORS on relayed ones."""

from __future__ import annotations

from collections.abc import Sequence

from falproxy.core.answers import Answer
from falproxy.core.cors import CorsPolicy, is_cors_header
from falproxy.core.types import Message, Send


async def send_answer(send: Send, answer: Answer) -> None:
    """Write ``answer`` (a refusal, a hook's reply, a preflight, an ops endpoint)."""
    await send({"type": "http.response.start", "status": answer.status, "headers": answer.headers})
    await send({"type": "http.response.body", "body": answer.body})


def with_cors(send: Send, cors: CorsPolicy, headers: Sequence[tuple[bytes, bytes]]) -> Send:
    """A ``send`` that puts this request's CORS headers on every response it starts.

    fal's own ``access-control-*`` headers never reach the client (the relay's header
    rules drop them); the proxy, not fal, decides which origins may read its responses.
    """
    extra = cors.response_headers(headers)
    if not extra:
        return send

    async def send_with_cors(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept = [h for h in message.get("headers", ()) if not is_cors_header(h[0])]
            message = dict(message, headers=[*kept, *extra])
        await send(message)

    return send_with_cors
