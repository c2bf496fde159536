"""What every source yields (:class:`RawPage`), its limits, and the error for a bad source;
and how a page's images are read (:data:`ImageLoader`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

HTML_SUFFIXES = (".html", ".htm")
MARKDOWN_SUFFIXES = (".md",)
PDF_SUFFIXES = (".pdf",)
PDF_CONTENT_TYPE = "application/pdf"


class SourceError(ValueError):
    """A source as a whole cannot be used (bad path, bad URL, corrupt archive ...)."""


class ImageUnavailable(Exception):
    """An image a page refers to could not be read (missing, too large, off-site ...): the
    message says why. The page itself is fine."""


@dataclass(frozen=True)
class LoadedImage:
    """The bytes of an image a page refers to, and where they were read (empty for a
    ``data:`` URI)."""

    data: bytes
    url: str


#: Reads the image that an ``<img src>`` of the page names (the attribute as written, resolved
#: against the page by the source) or raises :class:`ImageUnavailable`. Each source gives its
#: pages one that keeps to the source's own rules: a folder's files under its root, a zip's
#: members, a crawl's site through the crawler. It is usable while its page is the one being
#: handled (the crawl's connection and the zip stay open until the next page is asked for).
ImageLoader = Callable[[str], LoadedImage]


@dataclass(frozen=True)
class RawPage:
    """One page of a manual, as fetched, before any cleaning.

    ``source_name`` is stable across re-imports of the same manual (a path relative to the
    manual's root, with "/" separators), so that it can be used to match pages between runs.
    Exactly one of ``content`` and ``error`` is set.
    """

    source_name: str
    source_url: str
    content: bytes | None
    content_type: str
    charset: str | None
    error: str | None
    # How the page's images are read; None where a source has none (markdown, PDFs).
    load_image: ImageLoader | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """True when the page has content (no error)."""
        return self.error is None


@dataclass(frozen=True)
class CrawlOptions:
    """Limits and politeness settings for :func:`crawl` (and size limits for local files)."""

    max_pages: int = 500
    timeout_s: float = 10.0  # per request: connect, and total time to read the response
    retries: int = 2  # extra attempts for connection errors, timeouts, 429 and 5xx
    backoff_s: float = 0.5  # base of the exponential backoff (with jitter) between attempts
    max_backoff_s: float = 30.0  # caps backoff and Retry-After waits
    max_bytes: int = 2_000_000  # larger pages are reported as errors, never held in memory
    max_pdf_bytes: int = 100_000_000  # a PDF manual is one file of many pages
    max_image_bytes: int = 10_000_000  # a page's image; a bigger one is left out, with a note
    min_delay_s: float = 0.2  # minimum gap between the starts of two requests to the host
    user_agent: str = "ManualQA-Crawler/1.0 (+https://github.com/manualqa)"
    respect_robots: bool = True
    # Crawl hosts that resolve to loopback, private, link-local or reserved addresses (the
    # bundled sample's loopback server, a test server); off, they are refused (SSRF guard).
    allow_private_networks: bool = False


def with_data_uris(loader: ImageLoader | None, max_bytes: int) -> ImageLoader:
    """``loader`` that also reads ``data:`` URIs itself (they need no source), refusing any
    over ``max_bytes``; without a loader, every other image is unavailable."""

    def load(src: str) -> LoadedImage:
        if src[:5].lower() == "data:":
            return LoadedImage(data_uri_bytes(src, max_bytes), "")
        if loader is None:
            raise ImageUnavailable("this source does not read images")
        return loader(src)

    return load


def data_uri_bytes(uri: str, max_bytes: int) -> bytes:
    """The bytes of an image ``data:`` URI (base64 or percent-encoded), at most ``max_bytes``."""
    header, comma, payload = uri[5:].partition(",")
    if not comma:
        raise ImageUnavailable("a malformed data: URI")
    media_type, *params = header.split(";")
    if not media_type.strip().lower().startswith("image/"):
        raise ImageUnavailable(f"a data: URI of {media_type.strip() or 'text/plain'}, not an image")
    # Before decoding (a page is capped anyway): no encoding takes more than 3 characters a byte.
    if len(payload) > 3 * max_bytes + 16:
        raise ImageUnavailable(f"too large: over {max_bytes} bytes (the limit)")
    try:
        if any(param.strip().lower() == "base64" for param in params):
            data = base64.b64decode("".join(unquote_to_bytes(payload).decode("ascii").split()))
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ImageUnavailable(f"a malformed data: URI ({exc})") from None
    if len(data) > max_bytes:
        raise ImageUnavailable(f"too large: {len(data)} bytes > limit {max_bytes}")
    return data
