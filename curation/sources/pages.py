"""What every source yields (:class:`RawPage`), its limits, and the error for a bad source."""

from __future__ import annotations

from dataclasses import dataclass

HTML_SUFFIXES = (".html", ".htm")
MARKDOWN_SUFFIXES = (".md",)


class SourceError(ValueError):
    """A source as a whole cannot be used (bad path, bad URL, corrupt archive ...)."""


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
    min_delay_s: float = 0.2  # minimum gap between the starts of two requests to the host
    user_agent: str = "ManualQA-Crawler/1.0 (+https://github.com/manualqa)"
    respect_robots: bool = True
    # Crawl hosts that resolve to loopback, private, link-local or reserved addresses (the
    # bundled sample's loopback server, a test server); off, they are refused (SSRF guard).
    allow_private_networks: bool = False
