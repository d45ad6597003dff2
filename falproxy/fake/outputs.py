"""Deterministic fake model outputs: the image-model shape (docs/fal-protocol.md §15).

The same input always yields the same output (request ids aside), so tests can compare runs
done directly and through a proxy. Every image ``url`` points at the fake's own PNG route.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from . import png
from .inputs import Input, InputError, require_prompt

IMAGE_SIZES: dict[str, tuple[int, int]] = {  # fal's named presets, width x height
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
DEFAULT_SIZE = "landscape_4_3"
OUTPUT_FORMATS = frozenset({"jpeg", "png"})
MAX_IMAGES = 4
INFERENCE_SECONDS = 0.42


@dataclass(frozen=True)
class ImageRequest:
    """The validated inputs an image output depends on."""

    prompt: str
    width: int
    height: int
    count: int
    seed: int


def _as_int(value: object, loc: tuple[str, ...], low: int, high: int) -> int:
    """An integer field, also accepting digit strings (``GET`` runs send strings)."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError((loc, "Input should be a valid integer", "int_type"))
    if not low <= value <= high:
        raise InputError((loc, f"Input should be between {low} and {high}", "range"))
    return value


def _size(value: object) -> tuple[int, int]:
    """Resolve ``image_size``: a preset name or ``{"width", "height"}``."""
    if value is None:
        return IMAGE_SIZES[DEFAULT_SIZE]
    if isinstance(value, str) and value in IMAGE_SIZES:
        return IMAGE_SIZES[value]
    if isinstance(value, dict):
        loc = ("body", "image_size")
        width = _as_int(value.get("width"), (*loc, "width"), 1, png.MAX_SIDE)
        return width, _as_int(value.get("height"), (*loc, "height"), 1, png.MAX_SIDE)
    names = ", ".join(IMAGE_SIZES)
    raise InputError((("body", "image_size"), f"Input should be one of {names}", "enum"))


def _default_seed(prompt: str) -> int:
    """A seed derived from the prompt, so repeated inputs agree."""
    return int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") >> 1


def image_request(payload: Input) -> ImageRequest:
    """Validate an image-model input; raises :class:`InputError` with fal's ``loc`` paths."""
    prompt = require_prompt(payload)
    width, height = _size(payload.get("image_size"))
    count = _as_int(payload.get("num_images", 1), ("body", "num_images"), 1, MAX_IMAGES)
    raw_seed = payload.get("seed")
    seed = (
        _default_seed(prompt)
        if raw_seed is None
        else _as_int(raw_seed, ("body", "seed"), 0, 2**63 - 1)
    )
    fmt = payload.get("output_format", "jpeg")
    if fmt not in OUTPUT_FORMATS:
        raise InputError((("body", "output_format"), "Input should be 'jpeg' or 'png'", "enum"))
    return ImageRequest(prompt, width, height, count, seed)


def colour(seed: int, index: int) -> png.Rgb:
    """A pleasant, deterministic colour per image."""
    digest = hashlib.sha256(f"{seed}:{index}".encode()).digest()
    r, g, b = (96 + c % 128 for c in digest[:3])
    return r, g, b


def image_url(base_url: str, width: int, height: int, rgb: png.Rgb) -> str:
    """The fake-CDN URL that serves this exact PNG."""
    return f"{base_url}/cdn/images/{width}x{height}.png?color={bytes(rgb).hex()}"


def image_output(payload: Input, base_url: str) -> dict[str, Any]:
    """The full output of an image model. Images are always PNG and say so honestly."""
    req = image_request(payload)
    images = []
    for index in range(req.count):
        rgb = colour(req.seed, index)
        body = png.solid_png(req.width, req.height, rgb)
        images.append(
            {
                "url": image_url(base_url, req.width, req.height, rgb),
                "width": req.width,
                "height": req.height,
                "content_type": "image/png",
                "file_name": f"{req.seed}-{index}.png",
                "file_size": len(body),
            }
        )
    return {
        "images": images,
        "seed": req.seed,
        "prompt": req.prompt,
        "has_nsfw_concepts": [False] * req.count,
        "timings": {"inference": INFERENCE_SECONDS},
    }
