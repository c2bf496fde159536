"""The crawler's plain helpers: URLs (normalised, their directory, the links of a page) and
HTTP (content types, failures described for a person, the throttle, a fetch's result)."""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from http.client import IncompleteRead, RemoteDisconnected
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests

from curation.sources.network import _DEFAULT_PORTS

logger = logging.getLogger("manualqa.sources")


def _normalise_url(url: str) -> str:
    """Canonical form used for dedupe and prefix checks.

    Lower-cases scheme and host, drops default ports, user info and the fragment, and removes
    ``.``/``..`` segments. The query string is kept because it can select a different page.
    Raises ``ValueError`` for URLs that are not absolute http(s) URLs.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literals need their brackets back
        host = f"[{host}]"
    port = parts.port  # raises ValueError for a malformed port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    # urljoin with an absolute path applies RFC 3986 dot-segment removal for us.
    path = urlsplit(urljoin("http://x/", parts.path or "/")).path
    return urlunsplit((scheme, netloc, path, parts.query, ""))


def _directory_of(url: str) -> str:
    """The crawl prefix: the URL's directory (``http://h/manual/index.html`` -> ``.../manual/``)."""
    parts = urlsplit(url)
    directory = parts.path[: parts.path.rfind("/") + 1] or "/"
    return urlunsplit((parts.scheme, parts.netloc, directory, "", ""))


class _LinkExtractor(HTMLParser):
    """Collects ``<a href>`` targets (and ``<base href>``) with the forgiving stdlib parser."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.base: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("a", "base"):
            return
        href = dict(attrs).get("href")
        if not href or not href.strip():
            return
        if tag == "base":
            # Only the first <base> counts, as in browsers.
            self.base = self.base or href.strip()
        else:
            self.hrefs.append(href.strip())


def _extract_links(html: bytes, charset: str | None, page_url: str) -> list[str]:
    """Absolute, normalised http(s) links of a page, in document order."""
    parser = _LinkExtractor()
    try:
        parser.feed(html.decode(charset or "utf-8", errors="replace"))
        parser.close()
    except (LookupError, AssertionError) as exc:
        # LookupError: unknown charset name; AssertionError: html.parser on some broken markup.
        logger.warning("could not parse links of %s: %s", page_url, exc)
    base = urljoin(page_url, parser.base) if parser.base else page_url
    links: list[str] = []
    for href in parser.hrefs:
        try:
            links.append(_normalise_url(urljoin(base, href)))
        except ValueError:
            continue  # mailto:, javascript:, malformed ports ... are simply not pages
    return links


# ---------------------------------------------------------------------------------------------
# HTTP helpers


def _parse_content_type(value: str | None) -> tuple[str, str | None]:
    """Split ``text/html; charset=UTF-8`` into ``("text/html", "UTF-8")``."""
    if not value:
        return "", None
    mime, _, params = value.partition(";")
    charset = None
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip("\"'")
    return mime.strip().lower(), charset


def _describe_exception(exc: BaseException, timeout_s: float) -> str:
    """A short human message for a requests failure, e.g. ``connection refused``.

    requests wraps urllib3 which wraps the socket error, so the interesting cause is usually
    a few links down the chain; walk it rather than show a 300-character repr.
    """
    if isinstance(exc, requests.ConnectTimeout):
        return f"connect timeout after {timeout_s:g}s"
    if isinstance(exc, requests.ReadTimeout):
        return f"read timeout after {timeout_s:g}s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-response"
    stack: list[BaseException] = [exc]
    visited: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, ConnectionResetError):
            return "connection reset by peer"
        if isinstance(current, RemoteDisconnected):
            return "connection closed by server without a response"
        if isinstance(current, IncompleteRead):
            return "connection dropped mid-response"
        if type(current).__name__ == "ReadTimeoutError":  # urllib3's, raised mid-body
            return f"read timeout after {timeout_s:g}s"
        if (
            isinstance(current, socket.gaierror)
            or type(current).__name__ == "NameResolutionError"
            or "getaddrinfo" in str(current)
        ):
            return "host name could not be resolved"
        children = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        children += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack.extend(child for child in children if isinstance(child, BaseException))
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}"


class _TooLarge(Exception):
    """Raised while streaming a body that exceeds ``max_bytes``."""


class _Throttle:
    """Keeps the starts of consecutive requests to one host at least ``min_delay_s`` apart."""

    def __init__(self, min_delay_s: float) -> None:
        self.min_delay_s = min_delay_s
        self._last_start: float | None = None

    def wait(self) -> None:
        if self._last_start is not None:
            remaining = self._last_start + self.min_delay_s - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        self._last_start = time.monotonic()


@dataclass(frozen=True)
class _Fetched:
    """The outcome of one URL fetch after retries (no redirects followed)."""

    status: int | None
    content: bytes | None = None
    content_type: str = ""
    charset: str | None = None
    error: str | None = None
    location: str | None = None  # set for redirects


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
