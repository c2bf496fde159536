"""Pictures of a manual, as plain bytes in and out: what size an image says it is, and the
image re-encoded for the web.

Plain Python with Pillow (no Django), used by the HTML cleaner (which keeps an image only if
it is not an icon) and by the figure storage service (which re-encodes what it keeps). Only
common raster formats are decoded: every decoder is attack surface, and a manual's pictures
are PNG, JPEG, GIF, WebP or BMP.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError, features

__all__ = [
    "ICON_MAX_SIDE",
    "EncodedImage",
    "ImageRefused",
    "encode_web_image",
    "image_size",
    "is_icon",
]

#: The decoders Pillow may use on a manual's images.
FORMATS: Final = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
#: An image narrower or lower than this (in pixels) is an icon or a rule, not a figure.
ICON_MAX_SIDE: Final = 32
#: What Pillow raises on images it cannot read: unknown or broken data, truncated files, and
#: headers that lie (a plugin's struct unpacking or its own sanity checks).
_DECODE_ERRORS: Final = (
    UnidentifiedImageError,
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


_HUGE: Final = (2**31, 2**31)


class ImageRefused(ValueError):
    """An image that is not kept: unreadable, too big, or declaring too many pixels. The
    message says why, for the ingestion run's notes."""


@dataclass(frozen=True)
class EncodedImage:
    """An image re-encoded for the web: its bytes, content type, file suffix and size."""

    data: bytes
    content_type: str
    suffix: str
    width: int
    height: int


def image_size(data: bytes) -> tuple[int, int] | None:
    """The width and height an image's header declares, or None when ``data`` is not an image
    of a kept format. Reads the header only; a header declaring more pixels than Pillow's own
    guard allows is still a size (the storage refuses it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                return image.size
    except Image.DecompressionBombError:
        # Pillow refuses to open it at all (its size is only in the message): huge is what
        # matters here.
        return _HUGE
    except _DECODE_ERRORS:
        return None


def is_icon(size: tuple[int, int]) -> bool:
    """Whether an image of ``size`` is too small to be a figure (an icon, a bullet, a rule)."""
    width, height = size
    return width < ICON_MAX_SIDE or height < ICON_MAX_SIDE


def encode_web_image(
    data: bytes, *, max_bytes: int, max_pixels: int, max_side: int
) -> EncodedImage:
    """``data`` decoded and re-encoded as WebP (PNG where Pillow lacks WebP), scaled down so
    that its longer side is at most ``max_side`` pixels.

    Raises :class:`ImageRefused` for input over ``max_bytes``, an image declaring more than
    ``max_pixels`` pixels (checked on the header, before anything is decoded: a few kilobytes
    of PNG can declare gigapixels), and anything that does not decode. Re-encoding drops
    whatever the original carried besides its pixels (metadata, scripts in comments, later
    frames of an animation) and turns it upright by its EXIF orientation.
    """
    if len(data) > max_bytes:
        raise ImageRefused(f"too large: {len(data)} bytes > limit {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageRefused(
                        f"too many pixels: {width}x{height} > limit {max_pixels} pixels"
                    )
                if image.format == "JPEG":
                    # Decoded straight at 1/2 to 1/8 scale where it is that much too big.
                    image.draft("RGB", (max_side, max_side))
                image.load()
                picture = _web_ready(ImageOps.exif_transpose(image))
    except ImageRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRefused(f"too many pixels (a decompression bomb?): {exc}") from None
    except _DECODE_ERRORS as exc:
        raise ImageRefused(f"not a readable image: {_reason(exc)}") from None
    picture.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if features.check("webp"):
        picture.save(out, format="WEBP", quality=82, method=4)
        content_type, suffix = "image/webp", "webp"
    else:
        picture.save(out, format="PNG", optimize=True)
        content_type, suffix = "image/png", "png"
    return EncodedImage(out.getvalue(), content_type, suffix, picture.width, picture.height)


def _web_ready(image: Image.Image) -> Image.Image:
    """The first frame in RGB, or RGBA where the image has transparency."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]
