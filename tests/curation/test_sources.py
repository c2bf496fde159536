"""Tests for curation.sources: the crawler against a real local HTTP server, and file sources.

No HTTP mocking: every crawl test talks to ``tests.httpserver.LocalHTTPServer`` on 127.0.0.1,
so timeouts, dropped connections, chunked bodies and redirects behave as on the wire. Delays
and backoffs are kept tiny so the whole file runs in a few seconds.
"""

from __future__ import annotations

import logging
import socket
import time
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from curation.sources import (
    CrawlOptions,
    RawPage,
    SourceError,
    count_hint,
    crawl,
    iter_html_folder,
    iter_html_zip,
    iter_markdown_folder,
    iter_source,
)
from tests.httpserver import LocalHTTPServer, Response

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_SITE = PROJECT_ROOT / "curation" / "sample_manual" / "site"

HTML = {"Content-Type": "text/html; charset=utf-8"}

# Fast but otherwise realistic settings: tiny backoff, no politeness delay unless a test
# is about the delay itself.
FAST = CrawlOptions(
    timeout_s=2.0,
    retries=2,
    backoff_s=0.01,
    max_backoff_s=2.0,
    min_delay_s=0.0,
    max_bytes=10_000,
    allow_private_networks=True,  # the test servers listen on 127.0.0.1
)


def page(*links: str, title: str = "page") -> bytes:
    """A small HTML page linking to ``links``."""
    anchors = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return (
        f"<html><head><title>{title}</title></head><body><ul>{anchors}</ul></body></html>".encode()
    )


def write(path: Path, content: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def names(pages: list[RawPage]) -> list[str]:
    return [p.source_name for p in pages]


def by_name(pages: list[RawPage]) -> dict[str, RawPage]:
    return {p.source_name: p for p in pages}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A small site: a manual under /manual/, a page outside it and a robots.txt."""
    root = tmp_path / "site"
    write(root / "robots.txt", "User-agent: *\nDisallow: /manual/private/\n")
    write(root / "about.html", page("manual/index.html", title="about"))
    write(
        root / "manual" / "index.html",
        page(
            "a.html",
            "a.html#section-2",  # same page as a.html once the fragment is dropped
            "./sub/b.html",
            "/manual/sub/b.html#top",
            "../about.html",  # outside the prefix
            "http://other.example/manual/x.html",  # other host
            "mailto:owner@example.com",
            "private/secret.html",  # disallowed by robots.txt
            title="index",
        ),
    )
    write(root / "manual" / "a.html", page("index.html", "sub/b.html", title="a"))
    write(root / "manual" / "sub" / "b.html", page("../a.html", "../../about.html", title="b"))
    write(root / "manual" / "private" / "secret.html", page(title="secret"))
    return root


@pytest.fixture
def server(site: Path) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(root=site) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# Crawling: scope, dedupe, robots


def test_crawl_follows_links_breadth_first_within_the_start_prefix(
    server: LocalHTTPServer,
) -> None:
    pages = list(crawl(server.url("/manual/index.html"), FAST))

    assert names(pages) == ["index.html", "a.html", "sub/b.html"]
    assert all(p.error is None for p in pages)
    assert server.hit_count("/about.html") == 0
    index = pages[0]
    assert index.source_url == server.url("/manual/index.html")
    assert index.content == (server.root / "manual" / "index.html").read_bytes()  # type: ignore[operator]
    assert index.content_type == "text/html"


def test_crawl_fetches_each_url_once_ignoring_fragments(server: LocalHTTPServer) -> None:
    list(crawl(server.url("/manual/index.html"), FAST))

    assert server.hit_count("/manual/a.html") == 1
    assert server.hit_count("/manual/sub/b.html") == 1
    assert server.hit_count("/manual/index.html") == 1
    assert server.hit_count("/robots.txt") == 1


def test_crawl_skips_pages_disallowed_by_robots_txt(
    server: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="manualqa.sources")

    pages = list(crawl(server.url("/manual/index.html"), FAST))

    assert "private/secret.html" not in names(pages)
    assert server.hit_count("/manual/private/secret.html") == 0
    assert any(
        "disallows" in r.getMessage() and "private/secret.html" in r.getMessage()
        for r in caplog.records
        if r.levelno == logging.INFO
    )


def test_crawl_allows_everything_when_robots_txt_is_missing(
    site: Path, server: LocalHTTPServer
) -> None:
    (site / "robots.txt").unlink()

    pages = list(crawl(server.url("/manual/index.html"), FAST))

    assert "private/secret.html" in names(pages)


def test_crawl_ignores_robots_txt_when_told_to(server: LocalHTTPServer) -> None:
    pages = list(crawl(server.url("/manual/index.html"), replace(FAST, respect_robots=False)))

    assert "private/secret.html" in names(pages)
    assert server.hit_count("/robots.txt") == 0


def test_crawl_applies_robots_rules_for_its_own_user_agent(
    site: Path, server: LocalHTTPServer
) -> None:
    write(site / "robots.txt", "User-agent: ManualQA-Crawler\nDisallow: /manual/sub/\n")

    pages = list(crawl(server.url("/manual/index.html"), FAST))

    assert names(pages) == ["index.html", "a.html", "private/secret.html"]
    agents = {r.headers.get("User-Agent") for r in server.requests}
    assert agents == {FAST.user_agent}


def test_crawl_names_the_directory_url_index_html(server: LocalHTTPServer) -> None:
    pages = list(crawl(server.url("/manual/"), FAST))

    # a.html links back to "index.html": the same page name as "/manual/", so not refetched.
    assert names(pages) == ["index.html", "a.html", "sub/b.html"]
    assert pages[0].source_url == server.url("/manual/")
    assert server.hit_count("/manual/index.html") == 0


def test_crawl_stops_after_max_pages(server: LocalHTTPServer) -> None:
    pages = list(crawl(server.url("/manual/index.html"), replace(FAST, max_pages=2)))

    assert names(pages) == ["index.html", "a.html"]
    assert server.hit_count("/manual/sub/b.html") == 0


def test_crawl_counts_error_pages_towards_max_pages(server: LocalHTTPServer) -> None:
    server.script("/manual/a.html", Response(status=404))

    pages = list(crawl(server.url("/manual/index.html"), replace(FAST, max_pages=2)))

    assert [(p.source_name, p.error) for p in pages] == [
        ("index.html", None),
        ("a.html", "HTTP 404"),
    ]


def test_crawl_rejects_a_start_url_that_is_not_http() -> None:
    with pytest.raises(SourceError, match="ftp://"):
        crawl("ftp://example.com/manual/")


# ---------------------------------------------------------------------------------------------
# Crawling: content checks


def test_crawl_yields_pdfs_whole_and_reports_other_files_without_parsing_them(
    site: Path, server: LocalHTTPServer
) -> None:
    # Looks like HTML with a link, but is served as a PDF: yielded whole, never parsed for
    # links. A picture is neither a page nor a PDF: reported.
    write(site / "manual" / "spec.pdf", page("hidden.html"))
    write(site / "manual" / "hidden.html", page())
    write(site / "manual" / "logo.png", b"\x89PNG not really")
    write(site / "manual" / "index.html", page("spec.pdf", "logo.png"))

    pages = by_name(list(crawl(server.url("/manual/index.html"), FAST)))

    pdf = pages["spec.pdf"]
    assert (pdf.error, pdf.content_type) == (None, "application/pdf")
    assert pdf.content == page("hidden.html")
    assert server.hit_count("/manual/hidden.html") == 0
    assert pages["logo.png"].content is None
    assert pages["logo.png"].error == "not HTML or PDF: content-type image/png"


def test_crawl_takes_pdfs_the_manual_links_to_elsewhere_on_its_site_with_their_own_limit(
    site: Path, server: LocalHTTPServer
) -> None:
    write(site / "downloads" / "owners-manual.pdf", b"%PDF-1.7 " + b"x" * 20_000)
    write(site / "downloads" / "other.html", page())
    write(site / "manual" / "index.html", page("../downloads/owners-manual.pdf", "../about.html"))

    pages = by_name(list(crawl(server.url("/manual/index.html"), FAST)))
    small = by_name(
        list(crawl(server.url("/manual/index.html"), replace(FAST, max_pdf_bytes=5000)))
    )

    # A PDF outside the prefix on the same site is part of the manual; a page there is not.
    assert pages["downloads/owners-manual.pdf"].content.startswith(b"%PDF-1.7")
    assert len(pages["downloads/owners-manual.pdf"].content) > FAST.max_bytes  # its own limit
    assert "about.html" not in pages and server.hit_count("/downloads/other.html") == 0
    assert small["downloads/owners-manual.pdf"].error.startswith("too large: 20009 bytes")


def test_crawl_accepts_xhtml_and_reports_the_http_charset(server: LocalHTTPServer) -> None:
    server.script(
        "/manual/x.html",
        Response(
            headers={"Content-Type": "application/xhtml+xml; charset=ISO-8859-1"},
            body=page("a.html"),
        ),
    )

    pages = list(crawl(server.url("/manual/x.html"), FAST))

    assert pages[0].error is None
    assert pages[0].content_type == "application/xhtml+xml"
    assert pages[0].charset == "ISO-8859-1"
    assert names(pages)[1] == "a.html"  # links of XHTML pages are followed


def test_crawl_rejects_a_page_whose_content_length_exceeds_max_bytes(
    server: LocalHTTPServer,
) -> None:
    server.script("/manual/big.html", Response(headers=HTML, body=b"x" * 20_000))

    [big] = list(crawl(server.url("/manual/big.html"), FAST))

    assert big.content is None
    assert big.error == "too large: 20000 bytes > limit 10000"


def test_crawl_stops_reading_a_chunked_page_once_it_exceeds_max_bytes(
    server: LocalHTTPServer,
) -> None:
    # 200 chunks of 1 KB, 20 ms apart: reading it all would take 4 s. The crawler must give
    # up after about 10 chunks, well before that.
    chunks = (b"x" * 1000 for _ in range(200))
    server.script("/manual/stream.html", Response(headers=HTML, body=chunks, chunk_delay_s=0.02))

    started = time.monotonic()
    [big] = list(crawl(server.url("/manual/stream.html"), FAST))
    elapsed = time.monotonic() - started

    assert big.content is None
    assert big.error is not None and big.error.startswith("too large: at least ")
    assert big.error.endswith("> limit 10000")
    assert elapsed < 2.0


def test_crawl_does_not_ingest_a_redirect_that_leaves_the_prefix(
    site: Path, server: LocalHTTPServer
) -> None:
    write(site / "manual" / "index.html", page("away.html", "old.html"))
    write(site / "manual" / "new.html", page())
    server.script("/manual/away.html", Response(status=302, headers={"Location": "/about.html"}))
    server.script("/manual/old.html", Response(status=301, headers={"Location": "new.html"}))

    pages = list(crawl(server.url("/manual/index.html"), FAST))

    assert names(pages) == ["index.html", "new.html"]
    assert pages[1].source_url == server.url("/manual/new.html")
    assert server.hit_count("/about.html") == 0


def test_crawl_reports_a_redirect_loop_as_an_error(server: LocalHTTPServer) -> None:
    server.script("/manual/loop.html", Response(status=302, headers={"Location": "loop2.html"}))
    server.script("/manual/loop2.html", Response(status=302, headers={"Location": "loop.html"}))

    [loop] = list(crawl(server.url("/manual/loop.html"), FAST))

    assert loop.error == f"redirect loop via {server.url('/manual/loop.html')}"
    assert server.hit_count("/manual/loop.html") == 1


# ---------------------------------------------------------------------------------------------
# Crawling: errors and retries


def test_crawl_retries_503_after_the_retry_after_delay(server: LocalHTTPServer) -> None:
    server.script(
        "/manual/flaky.html",
        [
            Response(status=503, headers={"Retry-After": "1"}),
            Response(headers=HTML, body=page()),
        ],
    )

    [flaky] = list(crawl(server.url("/manual/flaky.html"), FAST))

    assert flaky.error is None
    assert flaky.content == page()
    first, second = server.hits["/manual/flaky.html"]
    # Retry-After wins over the (10 ms) exponential backoff.
    assert 0.95 <= second - first < 1.6


def test_crawl_does_not_retry_a_404(server: LocalHTTPServer) -> None:
    [missing] = list(crawl(server.url("/manual/missing.html"), FAST))

    assert missing.error == "HTTP 404"
    assert missing.content is None
    assert missing.source_name == "missing.html"
    assert server.hit_count("/manual/missing.html") == 1


def test_crawl_gives_up_on_a_permanent_500_after_the_retries(server: LocalHTTPServer) -> None:
    server.script("/manual/broken.html", Response(status=500))

    [broken] = list(crawl(server.url("/manual/broken.html"), FAST))

    assert broken.error == "HTTP 500 after 3 attempts"
    assert server.hit_count("/manual/broken.html") == 3


def test_crawl_reports_a_page_slower_than_the_timeout_as_unreachable(
    server: LocalHTTPServer,
) -> None:
    server.script("/manual/slow.html", Response(headers=HTML, body=page(), delay_s=3))
    options = replace(FAST, timeout_s=0.3, retries=1)

    started = time.monotonic()
    [slow] = list(crawl(server.url("/manual/slow.html"), options))

    assert slow.error == "unreachable: read timeout after 0.3s after 2 attempts"
    assert server.hit_count("/manual/slow.html") == 2
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "dropped",
    [
        pytest.param(Response(drop=True), id="before-any-response"),
        pytest.param(Response(headers=HTML, body=page("a.html"), drop=True), id="mid-body"),
    ],
)
def test_crawl_retries_a_dropped_connection(server: LocalHTTPServer, dropped: Response) -> None:
    server.script("/manual/drop.html", [dropped, Response(headers=HTML, body=page())])

    [result] = list(crawl(server.url("/manual/drop.html"), FAST))

    assert result.error is None
    assert result.content == page()
    assert server.hit_count("/manual/drop.html") == 2


def test_crawl_reports_a_refused_connection_after_the_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}/manual/index.html"

    pages = list(crawl(url, FAST))

    assert [(p.source_name, p.content, p.error) for p in pages] == [
        ("index.html", None, "unreachable: connection refused after 3 attempts")
    ]


def test_crawl_keeps_going_after_a_bad_page(server: LocalHTTPServer) -> None:
    server.script("/manual/a.html", Response(status=500))

    pages = by_name(list(crawl(server.url("/manual/index.html"), FAST)))

    assert pages["a.html"].error == "HTTP 500 after 3 attempts"
    assert pages["sub/b.html"].error is None


# ---------------------------------------------------------------------------------------------
# Crawling: politeness


def test_crawl_spaces_requests_to_the_host_by_min_delay(server: LocalHTTPServer) -> None:
    # A retried page is included: retries must respect the gap too.
    server.script("/manual/a.html", [Response(status=500), Response(headers=HTML, body=page())])
    options = replace(FAST, min_delay_s=0.2)

    pages = list(crawl(server.url("/manual/index.html"), options))

    assert all(p.error is None for p in pages)
    starts = sorted(hit for hits in server.hits.values() for hit in hits)
    assert len(starts) == 5  # robots.txt, index, a (twice), sub/b
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    # Hits are stamped server-side when the request line is parsed, a little after the client
    # started the request; allow a few milliseconds of scheduling jitter.
    assert min(gaps) >= 0.19, gaps


# ---------------------------------------------------------------------------------------------
# The sample manual shipped with the project


@pytest.mark.skipif(
    not (SAMPLE_SITE / "manual").is_dir(), reason=f"sample manual site not present: {SAMPLE_SITE}"
)
def test_crawl_of_the_sample_manual_yields_every_manual_page() -> None:
    manual = SAMPLE_SITE / "manual"
    expected = {
        path.relative_to(manual).as_posix()
        for path in manual.rglob("*.html")
        if "internal" not in path.relative_to(manual).parts
    }

    with LocalHTTPServer(root=SAMPLE_SITE) as srv:
        # Real pages are bigger than FAST's 10 KB test limit: use the production default.
        options = replace(FAST, max_bytes=CrawlOptions.max_bytes)
        pages = list(crawl(srv.url("/manual/index.html"), options))
        internal_hits = [path for path in srv.hits if path.startswith("/manual/internal/")]

    assert [p for p in pages if p.error is not None] == []
    assert set(names(pages)) == expected
    assert len(pages) == len(expected)
    assert "about.html" not in names(pages)
    assert internal_hits == []


# ---------------------------------------------------------------------------------------------
# Local files


@pytest.fixture
def html_folder(tmp_path: Path) -> Path:
    root = tmp_path / "html"
    write(root / "index.html", "<html>index</html>")
    write(root / "sub" / "page.htm", "<html>page</html>")
    write(root / "sub" / "deeper" / "z.HTML", "<html>z</html>")
    write(root / "notes.txt", "not a page")
    write(root / ".hidden.html", "<html>hidden</html>")
    write(root / ".git" / "x.html", "<html>git</html>")
    return root


def test_html_folder_yields_html_files_recursively_sorted(html_folder: Path) -> None:
    pages = list(iter_html_folder(html_folder))

    assert names(pages) == ["index.html", "sub/deeper/z.HTML", "sub/page.htm"]
    first = pages[0]
    assert first.content == b"<html>index</html>"
    assert first.content_type == "text/html"
    assert first.error is None
    assert first.source_url == (html_folder / "index.html").absolute().as_uri()


def test_html_folder_reports_oversized_and_unreadable_files_and_continues(
    html_folder: Path,
) -> None:
    write(html_folder / "big.html", b"x" * 101)
    (html_folder / "broken.html").symlink_to(html_folder / "does-not-exist.html")

    pages = by_name(list(iter_html_folder(html_folder, max_bytes=100)))

    assert pages["big.html"].content is None
    assert pages["big.html"].error == "too large: 101 bytes > limit 100"
    assert pages["broken.html"].content is None
    assert (pages["broken.html"].error or "").startswith("unreadable: ")
    assert pages["index.html"].error is None


def test_html_folder_that_does_not_exist_raises_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a directory"):
        iter_html_folder(tmp_path / "nope")


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("manual/", b"")  # an explicit directory entry
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_html_zip_yields_pages_sorted_ignoring_directories_and_metadata(tmp_path: Path) -> None:
    archive = make_zip(
        tmp_path / "manual.zip",
        {
            "manual/sub/page.html": b"<html>page</html>",
            "manual/index.htm": b"<html>index</html>",
            "manual/readme.txt": b"not a page",
            "__MACOSX/manual/._index.htm": b"resource fork",
            "manual/.DS_Store.html": b"junk",
        },
    )

    pages = list(iter_html_zip(archive))

    assert names(pages) == ["manual/index.htm", "manual/sub/page.html"]
    assert pages[0].content == b"<html>index</html>"
    assert pages[0].content_type == "text/html"
    assert pages[0].source_url == archive.absolute().as_uri() + "!/manual/index.htm"


def test_html_zip_reports_oversized_members_and_continues(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "m.zip", {"big.html": b"x" * 101, "ok.html": b"<p>ok</p>"})

    pages = by_name(list(iter_html_zip(archive, max_bytes=100)))

    assert pages["big.html"].error == "too large: 101 bytes > limit 100"
    assert pages["ok.html"].content == b"<p>ok</p>"


def test_html_zip_that_is_corrupt_raises_source_error(tmp_path: Path) -> None:
    bogus = write(tmp_path / "bogus.zip", b"this is not a zip")

    with pytest.raises(SourceError, match="not a readable zip"):
        iter_html_zip(bogus)


def test_markdown_folder_yields_md_files_as_markdown(tmp_path: Path) -> None:
    write(tmp_path / "md" / "b.md", "# B")
    write(tmp_path / "md" / "a" / "c.md", "# C")
    write(tmp_path / "md" / "img.png", b"\x89PNG")

    pages = list(iter_markdown_folder(tmp_path / "md"))

    assert names(pages) == ["a/c.md", "b.md"]
    assert {p.content_type for p in pages} == {"text/markdown"}
    assert pages[1].content == b"# B"


@pytest.mark.needs_model3
def test_markdown_folder_reads_the_model3_manual_corpus(model3_dir: Path) -> None:
    docs = model3_dir / "docs"

    pages = list(iter_source(str(docs)))

    assert len(pages) == len(list(docs.glob("*.md"))) == count_hint(str(docs))
    assert all(p.error is None and p.content for p in pages)
    assert all(p.content_type == "text/markdown" for p in pages)
    assert "charging_instructions.md" in names(pages)


# ---------------------------------------------------------------------------------------------
# iter_source dispatch and count_hint


def test_iter_source_crawls_http_urls(server: LocalHTTPServer) -> None:
    pages = list(iter_source(server.url("/manual/index.html"), FAST))

    assert names(pages) == ["index.html", "a.html", "sub/b.html"]


def test_iter_source_dispatches_local_sources_by_kind(tmp_path: Path, html_folder: Path) -> None:
    archive = make_zip(tmp_path / "m.zip", {"p.html": b"<p/>"})
    write(tmp_path / "md" / "a.md", "# A")
    write(tmp_path / "mixed" / "a.md", "# A")
    write(tmp_path / "mixed" / "b.html", "<p/>")

    assert names(list(iter_source(str(archive)))) == ["p.html"]
    assert [p.content_type for p in iter_source(str(tmp_path / "md"))] == ["text/markdown"]
    # A folder with any HTML is an HTML folder, even if it also holds markdown.
    assert names(list(iter_source(str(tmp_path / "mixed")))) == ["b.html"]
    assert names(list(iter_source(html_folder.as_uri()))) == names(
        list(iter_html_folder(html_folder))
    )


def test_iter_source_applies_max_bytes_to_local_files(tmp_path: Path) -> None:
    write(tmp_path / "md" / "a.md", "x" * 50)

    [result] = list(iter_source(str(tmp_path / "md"), replace(FAST, max_bytes=10)))

    assert result.error == "too large: 50 bytes > limit 10"


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        pytest.param(lambda tmp: str(tmp / "missing"), "source not found", id="missing-path"),
        pytest.param(lambda tmp: "", "empty source", id="empty"),
        pytest.param(lambda tmp: "ftp://example.com/manual/", "unsupported URL scheme", id="ftp"),
        pytest.param(
            lambda tmp: str(write(tmp / "manual.txt", b"text")),
            "not a PDF, a folder",
            id="plain-file",
        ),
        pytest.param(
            lambda tmp: str((tmp / "empty").mkdir() or tmp / "empty"), "no .html", id="empty-dir"
        ),
        pytest.param(
            lambda tmp: str(write(tmp / "bad.zip", b"nope")), "not a readable zip", id="bad-zip"
        ),
    ],
)
def test_iter_source_raises_source_error_naming_the_problem(
    tmp_path: Path, make_source: object, message: str
) -> None:
    source = make_source(tmp_path)  # type: ignore[operator]

    with pytest.raises(SourceError, match=message):
        iter_source(source)


def test_count_hint_is_exact_for_files_and_unknown_for_crawls(
    tmp_path: Path, html_folder: Path
) -> None:
    archive = make_zip(tmp_path / "m.zip", {"a.html": b"", "b/c.html": b"", "d.txt": b""})

    assert count_hint(str(html_folder)) == 3
    assert count_hint(str(archive)) == 2
    assert count_hint("https://example.com/manual/") is None
    assert count_hint(str(tmp_path / "missing")) is None


def test_a_folder_link_to_a_file_outside_it_is_not_read(tmp_path: Path) -> None:
    """Security review M2: whatever a folder's links reach would be published."""
    folder = tmp_path / "manual"
    folder.mkdir()
    (folder / "page.md").write_text("# Page\n\nText.\n")
    secret = tmp_path / "secret.md"
    secret.write_text("# Secret\n\nNot for the manual.\n")
    (folder / "notes.md").symlink_to(secret)
    (folder / "alias.md").symlink_to(folder / "page.md")

    pages = list(iter_markdown_folder(folder))

    assert sorted(page.source_name for page in pages) == ["alias.md", "page.md"]


# ---------------------------------------------------------------------------------------------
# PDFs: a file, a folder or a zip of them (read whole; sections come later)

PDF = b"%PDF-1.7\n% a PDF as sources see it: bytes, not parsed here\n"


def test_a_pdf_file_is_one_page_of_the_whole_file(tmp_path: Path) -> None:
    pdf = write(tmp_path / "Owners Manual.pdf", PDF)

    pages = list(iter_source(pdf))

    assert names(pages) == ["Owners Manual.pdf"]
    assert (pages[0].content, pages[0].content_type) == (PDF, "application/pdf")
    assert count_hint(pdf) == 1


def test_a_folder_yields_its_pdfs_after_its_pages_and_a_pdf_only_folder_its_pdfs(
    tmp_path: Path,
) -> None:
    write(tmp_path / "mixed" / "index.html", page())
    write(tmp_path / "mixed" / "docs" / "manual.pdf", PDF)
    write(tmp_path / "pdfs" / "b.pdf", PDF)
    write(tmp_path / "pdfs" / "a.PDF", PDF)
    write(tmp_path / "pdfs" / "notes.txt", "not a manual")

    mixed = list(iter_source(tmp_path / "mixed"))
    only = list(iter_source(tmp_path / "pdfs"))

    assert [(p.source_name, p.content_type) for p in mixed] == [
        ("index.html", "text/html"),
        ("docs/manual.pdf", "application/pdf"),
    ]
    assert names(only) == ["a.PDF", "b.pdf"] and count_hint(tmp_path / "pdfs") == 2


def test_a_pdf_over_the_limit_is_reported_and_a_zip_holds_pdfs_too(tmp_path: Path) -> None:
    big = write(tmp_path / "big.pdf", PDF + b"x" * 200)
    archive = make_zip(tmp_path / "m.zip", {"manual.pdf": PDF, "index.html": b"<p>ok</p>"})

    too_big = list(iter_source(big, replace(FAST, max_pdf_bytes=100)))
    zipped = by_name(list(iter_source(archive)))

    assert too_big[0].content is None
    assert too_big[0].error == f"too large: {len(PDF) + 200} bytes > limit 100"
    assert zipped["manual.pdf"].content_type == "application/pdf"
    assert zipped["manual.pdf"].content == PDF
    assert zipped["index.html"].content_type == "text/html"


def test_a_file_that_is_neither_a_zip_nor_a_pdf_is_refused_naming_both(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a PDF, a folder or a .zip"):
        iter_source(write(tmp_path / "manual.docx", b"PK"))
