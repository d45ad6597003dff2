"""The fake's CDN: upload targets, stored files and generated images.

Browsers reach these URLs directly, without a key: an upload URL's one-time ``token`` is its
only credential and files are public, as on fal's CDN. CORS comes from the app middleware.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from . import png
from .context import FakeContext
from .errors import detail
from .rest import json_body
from .storage import etag_of

IMAGE_CACHE = "public, max-age=3600"
DEFAULT_COLOUR = (128, 128, 128)


def parse_colour(raw: str | None) -> png.Rgb:
    """``rrggbb`` hex, or the default grey."""
    if raw is None:
        return DEFAULT_COLOUR
    try:
        data = bytes.fromhex(raw)
    except ValueError:
        data = b""
    if len(data) != 3:
        raise detail(400, "color must be six hex digits")
    return data[0], data[1], data[2]


class CdnEndpoints:
    """Handlers mounted under ``/cdn``."""

    def __init__(self, ctx: FakeContext) -> None:
        self.ctx = ctx

    def routes(self) -> list[BaseRoute]:
        """Uploads (single, parts, complete), files and images."""
        return [
            Route("/uploads/{file_id}", self.put_single, methods=["PUT"]),
            Route("/uploads/{file_id}/complete", self.complete, methods=["POST"]),
            Route("/uploads/{file_id}/{part:int}", self.put_part, methods=["PUT"]),
            Route("/files/{file_id}/{name}", self.get_file, methods=["GET"]),
            Route("/images/{width:int}x{height:int}.png", self.image, methods=["GET"]),
        ]

    @staticmethod
    def _token(request: Request) -> str:
        return request.query_params.get("token", "")

    async def put_single(self, request: Request) -> Response:
        """Store the body under the upload's file id; 403 on a wrong or used token."""
        data = await request.body()
        content_type = request.headers.get("content-type")
        self.ctx.storage.put_single(
            request.path_params["file_id"], self._token(request), data, content_type
        )
        return JSONResponse({})

    async def put_part(self, request: Request) -> Response:
        """Store one part; the ETag goes in the body (JS client) and the header (fal SDK)."""
        number: int = request.path_params["part"]
        data = await request.body()
        file_id = request.path_params["file_id"]
        etag = self.ctx.storage.put_part(file_id, self._token(request), number, data)
        return JSONResponse({"partNumber": number, "etag": etag}, headers={"etag": etag})

    async def complete(self, request: Request) -> Response:
        """Assemble the parts listed in ``{"parts": [...]}``."""
        body = await json_body(request)
        file_id = request.path_params["file_id"]
        stored = self.ctx.storage.complete(file_id, self._token(request), body)
        return JSONResponse({"file_id": file_id, "size": len(stored.data)})

    async def get_file(self, request: Request) -> Response:
        """A stored file with its content type."""
        params = request.path_params
        stored = self.ctx.storage.get(params["file_id"], params["name"])
        if stored is None:
            raise detail(404, "File not found")
        headers = {"content-type": stored.content_type, "etag": etag_of(stored.data)}
        return Response(stored.data, headers=headers)

    async def image(self, request: Request) -> Response:
        """A solid-colour PNG of the requested size."""
        width: int = request.path_params["width"]
        height: int = request.path_params["height"]
        if not (1 <= width <= png.MAX_SIDE and 1 <= height <= png.MAX_SIDE):
            raise detail(400, f"Image sides must be within 1..{png.MAX_SIDE}")
        body = png.solid_png(width, height, parse_colour(request.query_params.get("color")))
        return Response(body, media_type="image/png", headers={"cache-control": IMAGE_CACHE})
