"""The polite web crawler: robots.txt, spaced requests, retries with backoff, the manual's URL
prefix."""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Iterator
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import requests

from curation.sources.http import (
    _describe_exception,
    _directory_of,
    _extract_links,
    _Fetched,
    _normalise_url,
    _parse_content_type,
    _plural,
    _Throttle,
    _TooLarge,
)
from curation.sources.network import _PinnedAdapter, public_address
from curation.sources.pages import (
    PDF_CONTENT_TYPE,
    PDF_SUFFIXES,
    CrawlOptions,
    ImageLoader,
    ImageUnavailable,
    LoadedImage,
    RawPage,
    SourceError,
    with_data_uris,
)
from manualqa.lib.retry_after import retry_after_s

logger = logging.getLogger("manualqa.sources")


# Content types that the crawler treats as pages; everything else is reported, not parsed.
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Enough for real sites (http -> https -> trailing slash ...) while catching loops quickly.
MAX_REDIRECTS = 10
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK_SIZE = 64 * 1024
# Images already read in this crawl are kept up to this many bytes: a picture that several
# pages show (a diagram, a warning symbol) is then fetched once.
_IMAGE_CACHE_BYTES = 32_000_000


# ---------------------------------------------------------------------------------------------
# Crawler


def crawl(
    start_url: str,
    options: CrawlOptions = CrawlOptions(),
    *,
    session: requests.Session | None = None,
) -> Iterator[RawPage]:
    """Crawl a web manual breadth-first from ``start_url``, yielding each page once.

    Only links under the start URL's directory (same scheme, host and port) are followed, so
    crawling ``http://h/manual/index.html`` never wanders into the rest of the site. See the
    module docstring and :class:`CrawlOptions` for politeness and limits. The URL is validated
    immediately (raising :class:`SourceError`); network work starts on the first ``next()``.

    Pass ``session`` to reuse connections or add adapters; it is not closed here.
    """
    try:
        start = _normalise_url(start_url)
    except ValueError as exc:
        raise SourceError(f"cannot crawl {start_url!r}: {exc}") from exc
    return _Crawler(start, options, session).run()


class _Crawler:
    """State of one crawl: prefix, robots rules, throttle and frontier."""

    def __init__(self, start: str, options: CrawlOptions, session: requests.Session | None) -> None:
        self.start = start
        self.prefix = _directory_of(start)
        self.options = options
        self._session = session
        self._throttle = _Throttle(options.min_delay_s)
        self._robots: RobotFileParser | None = None  # None means everything is allowed
        self._headers = {"User-Agent": options.user_agent}
        self._pins: _PinnedAdapter | None = None  # on the crawler's own session only
        self._images: dict[str, LoadedImage | str] = {}  # URL -> image, or why it is not one
        self._images_bytes = 0

    # -- public entry --------------------------------------------------------------------

    def run(self) -> Iterator[RawPage]:
        own_session = self._session is None
        session = self._session or self._new_session()
        try:
            yield from self._crawl(session)
        finally:
            if own_session:
                session.close()

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # No proxies or ~/.netrc from the environment: the crawl goes where it was checked.
        session.trust_env = False
        self._pins = _PinnedAdapter()
        session.mount("http://", self._pins)
        session.mount("https://", self._pins)
        return session

    def _crawl(self, session: requests.Session) -> Iterator[RawPage]:
        logger.info("crawling %s (prefix %s)", self.start, self.prefix)
        if self.options.respect_robots:
            self._load_robots(session)
        if not self._allowed(self.start):
            return
        queue: deque[str] = deque([self.start])
        # Dedupe on source_name rather than raw URL: it already ignores fragments, and it
        # also merges ".../manual/" with ".../manual/index.html" and percent-encoding variants,
        # which would otherwise yield two pages with the same name.
        seen = {self._source_name(self.start)}
        yielded = 0
        while queue and yielded < self.options.max_pages:
            url = queue.popleft()
            result = self._fetch_page(session, url, seen)
            if result is None:
                continue
            page, links = result
            yield page
            yielded += 1
            for link in links:
                # Check robots when a link is first discovered so each skip is logged once.
                if self._takes(link) and self._source_name(link) not in seen:
                    seen.add(self._source_name(link))
                    if self._allowed(link):
                        queue.append(link)
        if queue:
            logger.info("stopped after max_pages=%d; %d URLs left", yielded, len(queue))

    # -- rules ---------------------------------------------------------------------------

    def _takes(self, link: str) -> bool:
        """Whether a link is part of the manual: under the prefix, or a PDF on the same site
        (a manual's page often links its PDF from a downloads folder elsewhere)."""
        if self._in_prefix(link):
            return True
        parts, start = urlsplit(link), urlsplit(self.start)
        return (parts.scheme, parts.netloc) == (start.scheme, start.netloc) and (
            parts.path.lower().endswith(PDF_SUFFIXES)
        )

    def _in_prefix(self, url: str) -> bool:
        # Both are normalised, so a plain string prefix check compares scheme, host, port
        # and path at once.
        return url.startswith(self.prefix)

    def _allowed(self, url: str) -> bool:
        if self._robots is None or self._robots.can_fetch(self.options.user_agent, url):
            return True
        logger.info("robots.txt disallows %s; skipped", url)
        return False

    def _source_name(self, url: str) -> str:
        parts = urlsplit(url)
        if not self._in_prefix(url):  # a PDF elsewhere on the site: its path names it
            return unquote(parts.path.lstrip("/"))
        relative = unquote(parts.path[len(urlsplit(self.prefix).path) :])
        if not relative or relative.endswith("/"):
            relative += "index.html"
        return f"{relative}?{parts.query}" if parts.query else relative

    def _load_robots(self, session: requests.Session) -> None:
        """Fetch ``/robots.txt`` once; missing or unreachable means everything is allowed."""
        parts = urlsplit(self.start)
        robots_url = urlunsplit((parts.scheme, parts.netloc, "/robots.txt", "", ""))
        fetched = self._fetch(session, robots_url, require_html=False)
        if fetched.status in (401, 403):
            # The conventional reading (also urllib.robotparser's): access-controlled
            # robots.txt means the site does not want to be crawled.
            logger.warning("robots.txt is HTTP %s; treating the site as disallowed", fetched.status)
            self._robots = RobotFileParser(robots_url)
            self._robots.disallow_all = True
            return
        if fetched.content is None:
            logger.info("no usable robots.txt at %s (%s); all allowed", robots_url, fetched.error)
            return
        robots = RobotFileParser(robots_url)
        robots.parse(fetched.content.decode("utf-8", errors="replace").splitlines())
        self._robots = robots
        delay = robots.crawl_delay(self.options.user_agent)
        if delay is not None and float(delay) > self._throttle.min_delay_s:
            # Honour the site's Crawl-delay, but never stall a crawl for minutes.
            self._throttle.min_delay_s = min(float(delay), self.options.max_backoff_s)
            logger.info("robots.txt Crawl-delay: %ss", self._throttle.min_delay_s)

    # -- fetching ------------------------------------------------------------------------

    def _fetch_page(
        self, session: requests.Session, url: str, seen: set[str]
    ) -> tuple[RawPage, list[str]] | None:
        """Fetch one page, following redirects by hand.

        Redirects are followed manually (not by requests) so that each hop is throttled,
        checked against robots.txt and the prefix *before* it is requested, and deduped.
        Returns None when the page is skipped rather than yielded.
        """
        current = url
        chain = {self._source_name(url)}  # names visited by this page's redirects
        for _hop in range(MAX_REDIRECTS + 1):
            fetched = self._fetch(session, current, require_html=True)
            if fetched.location is None:
                break
            try:
                target = _normalise_url(urljoin(current, fetched.location))
            except ValueError:
                target = fetched.location
            if not self._in_prefix(target):
                logger.info("%s redirects outside the manual to %s; not ingested", current, target)
                return None
            name = self._source_name(target)
            if name in chain:
                fetched = _Fetched(status=fetched.status, error=f"redirect loop via {target}")
                break
            if name in seen:
                # Another link already led (or will lead) to that page: fetch it only once.
                logger.debug("%s redirects to already seen %s", current, target)
                return None
            seen.add(name)
            chain.add(name)
            if not self._allowed(target):
                return None
            current = target
        else:
            fetched = _Fetched(status=None, error=f"too many redirects (more than {MAX_REDIRECTS})")

        page = RawPage(
            source_name=self._source_name(current),
            source_url=current,
            content=fetched.content,
            content_type=fetched.content_type,
            charset=fetched.charset,
            error=fetched.error,
        )
        if page.error is not None:
            logger.warning("%s: %s", current, page.error)
            return page, []
        assert fetched.content is not None  # guaranteed when there is no error
        if fetched.content_type == PDF_CONTENT_TYPE:
            return page, []  # a PDF is a manual (or part of one), not a page of links
        images = with_data_uris(self._images_of(session, current), self.options.max_image_bytes)
        page = dataclasses.replace(page, load_image=images)
        return page, _extract_links(fetched.content, fetched.charset, current)

    # -- images --------------------------------------------------------------------------

    def _images_of(self, session: requests.Session, page_url: str) -> ImageLoader:
        """Reads the images of the page at ``page_url`` through this crawl's own rules."""

        def load(src: str) -> LoadedImage:
            try:
                url = _normalise_url(urljoin(page_url, src.strip()))
            except ValueError:
                raise ImageUnavailable("not an http(s) address") from None
            found = self._images.get(url)
            if found is None:
                found = self._fetch_image(session, url)
                size = len(found.data) if isinstance(found, LoadedImage) else 0
                if self._images_bytes + size <= _IMAGE_CACHE_BYTES:
                    self._images[url] = found
                    self._images_bytes += size
            if isinstance(found, str):
                raise ImageUnavailable(found)
            return found

        return load

    def _fetch_image(self, session: requests.Session, url: str) -> LoadedImage | str:
        """An image of the manual's site, or why it cannot be had.

        Pages are followed under the prefix only, but a manual's pictures often sit in a
        folder beside it (``/static/img/``), so an image may be anywhere on the same site
        (scheme, host and port), never on another one. It goes through the same fetch as pages
        (the address check, robots.txt, spacing, retries, the size limit for images) and its
        redirects are followed by hand under the same rules.
        """
        for _hop in range(MAX_REDIRECTS + 1):
            if not self._same_site(url):
                return f"on another site ({urlsplit(url).netloc}): not fetched"
            if not self._allowed(url):
                return "robots.txt disallows it"
            try:
                fetched = self._fetch(session, url, require_html=False, require_image=True)
            except SourceError as exc:  # the address check: the crawl's next page ends it
                return str(exc)
            if fetched.location is None:
                break
            try:
                url = _normalise_url(urljoin(url, fetched.location))
            except ValueError:
                return f"redirects to {fetched.location[:200]}, not an http(s) address"
        else:
            return f"too many redirects (more than {MAX_REDIRECTS})"
        if fetched.error is not None or fetched.content is None:
            return fetched.error or "no content"
        return LoadedImage(fetched.content, url)

    def _same_site(self, url: str) -> bool:
        parts, start = urlsplit(url), urlsplit(self.start)
        return (parts.scheme, parts.netloc) == (start.scheme, start.netloc)

    def _fetch(
        self,
        session: requests.Session,
        url: str,
        *,
        require_html: bool,
        require_image: bool = False,
    ) -> _Fetched:
        """GET ``url`` with throttling, timeouts, size limits and retries."""
        options = self.options
        attempts = max(1, options.retries + 1)
        last_error = ""
        last_status: int | None = None
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            self._throttle.wait()
            started = time.monotonic()
            try:
                # Checked before every request, redirects included (SourceError ends the crawl).
                address = public_address(url, allow_private=options.allow_private_networks)
                if self._pins is not None:
                    self._pins.pins[urlsplit(url).hostname or ""] = address
                response = session.get(
                    url,
                    headers=self._headers,
                    timeout=(options.timeout_s, options.timeout_s),
                    stream=True,  # so that size and type are checked before the body is read
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout, socket.gaierror) as exc:
                last_status = None
                last_error = "unreachable: " + _describe_exception(exc, options.timeout_s)
            else:
                with response:
                    status = response.status_code
                    if status == 429 or status >= 500:
                        last_status = status
                        last_error = f"HTTP {status}"
                        if status in (429, 503):
                            retry_after = retry_after_s(response.headers)
                    else:
                        try:
                            return self._complete(response, started, require_html, require_image)
                        except (
                            requests.ConnectionError,
                            requests.Timeout,
                            requests.exceptions.ChunkedEncodingError,
                        ) as exc:
                            # The body broke off mid-way: as transient as a refused connect.
                            last_status = None
                            last_error = "unreachable: " + _describe_exception(
                                exc, options.timeout_s
                            )
            if attempt < attempts:
                delay = self._backoff_s(attempt, retry_after)
                logger.info(
                    "%s: %s (attempt %d/%d); retrying in %.2fs",
                    url,
                    last_error,
                    attempt,
                    attempts,
                    delay,
                )
                time.sleep(delay)
        return _Fetched(
            status=last_status, error=f"{last_error} after {_plural(attempts, 'attempt')}"
        )

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        """Delay before attempt ``attempt + 1``: Retry-After if given, else jittered backoff."""
        if retry_after is not None:
            return min(retry_after, self.options.max_backoff_s)
        delay = min(self.options.backoff_s * 2 ** (attempt - 1), self.options.max_backoff_s)
        # "Equal jitter": keeps at least half the delay, spreads the rest so that many
        # crawlers (or workers) hitting one server do not retry in lockstep.
        return delay / 2 + random.uniform(0, delay / 2)

    def _complete(
        self,
        response: requests.Response,
        started: float,
        require_html: bool,
        require_image: bool = False,
    ) -> _Fetched:
        """Turn a non-retryable response into a result, reading the body within limits."""
        status = response.status_code
        content_type, charset = _parse_content_type(response.headers.get("Content-Type"))
        if status in _REDIRECT_STATUSES:
            location = response.headers.get("Location")
            if location:
                return _Fetched(status=status, location=location)
            return _Fetched(
                status, content_type=content_type, error=f"HTTP {status} without Location"
            )
        if status >= 300:
            return _Fetched(status, content_type=content_type, error=f"HTTP {status}")
        if require_html and content_type not in HTML_CONTENT_TYPES | {PDF_CONTENT_TYPE}:
            return _Fetched(
                status,
                content_type=content_type,
                charset=charset,
                error=f"not HTML or PDF: content-type {content_type or '(missing)'}",
            )
        if require_image and not content_type.startswith("image/"):
            return _Fetched(
                status,
                content_type=content_type,
                error=f"not an image: content-type {content_type or '(missing)'}",
            )
        limit = self._limit(content_type)
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            # Reject up front: no need to download what we would throw away.
            return _Fetched(
                status,
                content_type=content_type,
                charset=charset,
                error=f"too large: {int(declared)} bytes > limit {limit}",
            )
        try:
            body = self._read_limited(response, started)
        except _TooLarge as exc:
            return _Fetched(status, content_type=content_type, charset=charset, error=str(exc))
        return _Fetched(status, content=body, content_type=content_type, charset=charset)

    def _limit(self, content_type: str) -> int:
        """The size limit for a body: a PDF manual is one big file, a page a small one."""
        if content_type == PDF_CONTENT_TYPE:
            return self.options.max_pdf_bytes
        if content_type.startswith("image/"):
            return self.options.max_image_bytes
        return self.options.max_bytes

    def _read_limited(self, response: requests.Response, started: float) -> bytes:
        """Read a streamed body, stopping as soon as it exceeds ``max_bytes``.

        Content-Length can be absent (chunked) or wrong, so the limit is enforced on the bytes
        actually received. A total deadline is enforced too: requests' read timeout only
        bounds the gap between two socket reads, so a server dripping bytes could otherwise
        hold the crawler forever.
        """
        limit = self._limit(_parse_content_type(response.headers.get("Content-Type"))[0])
        deadline = started + self.options.timeout_s
        body = bytearray()
        for chunk in response.iter_content(_CHUNK_SIZE):
            body += chunk
            if len(body) > limit:
                raise _TooLarge(f"too large: at least {len(body)} bytes > limit {limit}")
            if time.monotonic() > deadline:
                raise requests.ReadTimeout(
                    f"response not complete within {self.options.timeout_s}s"
                )
        return bytes(body)
