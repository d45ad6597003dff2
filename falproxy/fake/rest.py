"""``rest.fal.ai``: token minting and storage upload initiation (docs/fal-protocol.md §9, §10).

Both need ``Authorization: Key``; tokens are never accepted here, so a minted JWT cannot mint
more of itself. Upload URLs point back at the fake's ``/cdn`` routes.
"""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .context import FakeContext
from .errors import detail
from .inputs import InputError
from .storage import DEFAULT_CONTENT_TYPE
from .tokens import parse_token_request

STORAGE_TYPE = "fal-cdn-v3"  # the only storage_type the JS client's initiate calls use


async def json_body(request: Request) -> object:
    """The parsed JSON body, or 400."""
    try:
        return json.loads(await request.body() or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise detail(400, "Body must be JSON") from None


def safe_file_name(value: object) -> str:
    """A file name usable as one URL path segment."""
    name = value if isinstance(value, str) else ""
    name = name.replace("/", "_").replace("\\", "_").strip()
    return name or f"{int(time.time() * 1000)}.bin"


class RestEndpoints:
    """Handlers mounted under ``/rest``."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        """Tokens and the two initiate calls."""
        return [
            Route("/tokens/", self.tokens, methods=["POST"]),
            Route("/storage/upload/initiate", self.initiate, methods=["POST"]),
            Route("/storage/upload/initiate-multipart", self.initiate_multipart, methods=["POST"]),
        ]

    async def tokens(self, request: Request) -> Response:
        """Mint a token; the answer is a bare JSON string."""
        self.ctx.authorize(request, None, tokens=False)
        body = await json_body(request)
        try:
            apps, expiration = parse_token_request(body)
        except InputError as problems:
            raise problems.as_fake_error() from None
        return JSONResponse(self.ctx.tokens.mint(apps, expiration))

    async def initiate(self, request: Request) -> Response:
        """Start a single-``PUT`` upload."""
        return await self._initiate(request, multipart=False)

    async def initiate_multipart(self, request: Request) -> Response:
        """Start a multipart upload (the JS client uses it above 90 MiB)."""
        return await self._initiate(request, multipart=True)

    async def _initiate(self, request: Request, *, multipart: bool) -> Response:
        self.ctx.authorize(request, None, tokens=False)
        if request.query_params.get("storage_type") != STORAGE_TYPE:
            raise detail(400, f"Unsupported storage_type; use {STORAGE_TYPE}")
        body = await json_body(request)
        fields = body if isinstance(body, dict) else {}
        content_type = fields.get("content_type")
        if not isinstance(content_type, str) or not content_type:
            content_type = DEFAULT_CONTENT_TYPE
        name = safe_file_name(fields.get("file_name"))
        upload = self.ctx.storage.initiate(content_type, name, multipart=multipart)
        base = self.ctx.base_url(request)
        return JSONResponse(
            {
                "upload_url": f"{base}/cdn/uploads/{upload.file_id}?token={upload.token}",
                "file_url": f"{base}/cdn/files/{upload.file_id}/{quote(name)}",
            }
        )
