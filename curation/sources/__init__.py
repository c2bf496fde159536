"""Where manual pages come from: a polite web crawler and local folder/zip readers.

Every source yields :class:`RawPage` objects: the raw bytes of one page plus where it came
from. Turning HTML into markdown is someone else's job (``curation.scraping``); this package only
*fetches*. It deliberately does not import Django so that it can be used and tested as plain
Python (management commands, Celery tasks and scripts all call into it).

Design rules that apply to every source:

* One bad page never stops a source. A page that cannot be fetched or read is yielded as a
  ``RawPage`` with ``content=None`` and ``error`` naming the problem, so the curation UI can show
  the curator what was skipped and why.
* Problems with the source *as a whole* (an unknown path, a corrupt zip, an unsupported URL
  scheme) raise :class:`SourceError` as soon as the source is opened, before any page is
  yielded, so a form can report them immediately.
* The crawler is polite: it honours robots.txt, spaces its requests out, retries with backoff
  and stays inside the manual's URL prefix.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from curation.sources.crawler import crawl
from curation.sources.files import (
    _list_folder,
    _zip_members,
    iter_html_folder,
    iter_html_zip,
    iter_markdown_folder,
    iter_pdf_files,
)
from curation.sources.network import _DEFAULT_PORTS
from curation.sources.pages import (
    HTML_SUFFIXES,
    MARKDOWN_SUFFIXES,
    PDF_CONTENT_TYPE,
    PDF_SUFFIXES,
    CrawlOptions,
    ImageLoader,
    ImageUnavailable,
    LoadedImage,
    RawPage,
    SourceError,
)

__all__ = [
    "PDF_CONTENT_TYPE",
    "CrawlOptions",
    "ImageLoader",
    "ImageUnavailable",
    "LoadedImage",
    "RawPage",
    "SourceError",
    "count_hint",
    "crawl",
    "iter_html_folder",
    "iter_html_zip",
    "iter_markdown_folder",
    "iter_source",
]


# ---------------------------------------------------------------------------------------------
# Dispatch


def _classify(source: str | os.PathLike[str]) -> tuple[str, str | Path]:
    """Decide what kind of source ``source`` is: crawl, zip, markdown or html folder."""
    text = os.fspath(source).strip()
    if not text:
        raise SourceError("empty source: give an http(s) URL, a folder or a .zip file")
    if "://" in text:
        scheme = urlsplit(text).scheme.lower()
        if scheme in _DEFAULT_PORTS:
            return "crawl", text
        if scheme != "file":
            raise SourceError(f"unsupported URL scheme {scheme!r} in {text!r}: use http(s)")
        path = Path(url2pathname(urlsplit(text).path))
    else:
        path = Path(text).expanduser()
    if path.is_dir():
        has_html = bool(_list_folder(path, HTML_SUFFIXES))
        if has_html:
            return "html", path
        if _list_folder(path, MARKDOWN_SUFFIXES):
            return "markdown", path
        if _list_folder(path, PDF_SUFFIXES):
            return "pdf_folder", path
        raise SourceError(f"no .html, .htm, .md or .pdf files in folder {path}")
    if path.is_file():
        if path.suffix.lower() == ".zip":
            return "zip", path
        if path.suffix.lower() in PDF_SUFFIXES:
            return "pdf", path
        raise SourceError(
            f"{path} is a file, not a PDF, a folder or a .zip archive of HTML pages or PDFs"
        )
    raise SourceError(
        f"source not found: {text!r} is neither an http(s) URL nor an existing folder or .zip"
    )


def iter_source(
    source: str | os.PathLike[str], options: CrawlOptions = CrawlOptions()
) -> Iterator[RawPage]:
    """Pages of any supported source, chosen by what ``source`` is.

    * ``http(s)://`` URL: :func:`crawl`;
    * existing ``.zip`` file: :func:`iter_html_zip` (its HTML pages and PDFs);
    * existing ``.pdf`` file: the PDF, one page for the whole file (sections come later);
    * existing folder: :func:`iter_markdown_folder` if it holds ``.md`` files and no HTML,
      else :func:`iter_html_folder`, and then the folder's PDFs;
    * ``file://`` URLs are treated as the local path they name.

    Anything else raises :class:`SourceError` immediately, with a message naming the problem.
    """
    kind, target = _classify(source)
    if kind == "crawl":
        return crawl(str(target), options)
    path = Path(target)
    if kind == "zip":
        return iter_html_zip(
            path,
            max_bytes=options.max_bytes,
            max_pdf_bytes=options.max_pdf_bytes,
            max_image_bytes=options.max_image_bytes,
        )
    if kind == "pdf":
        return iter_pdf_files([(path.name, path)], max_bytes=options.max_pdf_bytes)
    pdfs = iter_pdf_files(_list_folder(path, PDF_SUFFIXES), max_bytes=options.max_pdf_bytes)
    if kind == "pdf_folder":
        return pdfs
    if kind == "markdown":
        return itertools.chain(iter_markdown_folder(path, max_bytes=options.max_bytes), pdfs)
    pages = iter_html_folder(
        path, max_bytes=options.max_bytes, max_image_bytes=options.max_image_bytes
    )
    return itertools.chain(pages, pdfs)


def count_hint(source: str | os.PathLike[str]) -> int | None:
    """How many pages ``source`` will yield, for progress bars; None when unknown.

    Exact for folders and zips (it lists them); None for crawls (the site is only discovered
    while crawling) and for sources that :func:`iter_source` would reject, because a progress
    hint must never be the thing that fails an import.
    """
    try:
        kind, target = _classify(source)
        if kind == "crawl":
            return None
        path = Path(target)
        if kind == "zip":
            return len(_zip_members(path))
        if kind == "pdf":
            return 1
        suffixes = {"markdown": MARKDOWN_SUFFIXES, "html": HTML_SUFFIXES}.get(kind, ())
        return len(_list_folder(path, suffixes + PDF_SUFFIXES))
    except (SourceError, OSError):
        return None
