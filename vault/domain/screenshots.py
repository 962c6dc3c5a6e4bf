"""Screenshots: black out named regions before anything is encrypted (DESIGN.md §5).

Pure: bytes in, bytes out (Pillow). Decoding is bounded (pixel count) so a crafted image cannot
exhaust memory; the result is re-encoded as PNG, which also drops any metadata (EXIF, text
chunks) the original carried.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, UnidentifiedImageError

__all__ = ["MAX_PIXELS", "Region", "ScreenshotError", "black_out"]

MAX_PIXELS = 50_000_000  # e.g. 8K x 6K; larger is refused before decoding
ALLOWED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})


class ScreenshotError(ValueError):
    """The bytes are not an image this vault accepts."""


@dataclass(frozen=True, slots=True)
class Region:
    """A rectangle to black out, in pixels from the top-left corner."""

    x: int
    y: int
    w: int
    h: int


def black_out(image: bytes, regions: Sequence[Region]) -> bytes:
    """The image with every region filled black, as PNG without metadata."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(image)) as opened:
                if opened.format not in ALLOWED_FORMATS:
                    raise ScreenshotError("screenshots must be PNG, JPEG or WebP")
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise ScreenshotError("image too large")
                picture = opened.convert("RGB")
    except (
        UnidentifiedImageError,
        OSError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise ScreenshotError("not a readable image") from exc
    draw = ImageDraw.Draw(picture)
    for region in regions:
        if region.x >= width or region.y >= height:
            raise ScreenshotError("a region lies outside the image")
        draw.rectangle(
            (
                region.x,
                region.y,
                min(width, region.x + region.w) - 1,
                min(height, region.y + region.h) - 1,
            ),
            fill=(0, 0, 0),
        )
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=False)
    return out.getvalue()
