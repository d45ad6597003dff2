"""The lean upstream HTTP/1.1 client: asyncio protocols, httptools, a keep-alive pool.

Written for the relay's one job (send checked bytes, stream the answer back) instead of a
general client library: no redirects, cookies, decompression or invented headers to turn
off, and no per-call machinery beyond what a relayed call needs. See :mod:`.client`.
"""

from falproxy.client.client import LeanClient
from falproxy.client.connection import MAX_RESPONSE_HEAD_BYTES
from falproxy.client.response import UpstreamResponse
from falproxy.client.settings import UpstreamSettings

__all__ = ["MAX_RESPONSE_HEAD_BYTES", "LeanClient", "UpstreamResponse", "UpstreamSettings"]
