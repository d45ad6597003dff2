"""The upstream call behind fal's pricing API, for spend budgets (``admission/pricing.py``).

Admission decides which price to ask for and caches it; this module only performs the
``GET`` through the proxy's own lean client, with the same TLS trust and timeouts as
every other upstream call, reading at most :data:`MAX_PRICING_BYTES`.
"""

from __future__ import annotations

from typing import Final

from falproxy.admission.pricing import Fetch
from falproxy.client import LeanClient

# A pricing answer is a few hundred bytes; anything far larger is not one.
MAX_PRICING_BYTES: Final = 256 * 1024
# How long admission waits for the pricing API before counting the price as unknown.
PRICING_TIMEOUT: Final = 5.0


def pricing_fetch(client: LeanClient) -> Fetch:
    """A :data:`Fetch` that GETs through ``client``; raises on failure or an oversize body."""

    async def fetch(url: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
        response = await client.request("GET", url, headers, None, head_timeout=PRICING_TIMEOUT)
        try:
            body = b""
            while chunk := await response.read_chunk():
                body += chunk
                if len(body) > MAX_PRICING_BYTES:
                    raise ValueError("the pricing answer is too large")
            return response.status, body
        finally:
            if response.complete:
                response.release()
            else:
                response.close()

    return fetch
