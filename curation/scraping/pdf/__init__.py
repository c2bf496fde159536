"""A PDF owner's manual to clean markdown sections, one per chapter, anchored to their pages.

The output matches what :mod:`curation.scraping.markdown` makes of an HTML page (``# Title``,
``##``/``###`` headings, re-joined paragraphs, ``-``/``1.`` lists, pipe tables, "Warning: ..."
callouts, ASCII-normalised text), plus two kinds of marker lines, each a paragraph of its own:
``<!-- page N -->`` before the first block that starts on page N, and
``<!-- figure KEY -->`` where a picture stands (followed by its caption paragraph).

Library: pdfplumber 0.11 (MIT) over pdfminer.six (MIT) reads the text, with pypdfium2
(Apache-2.0/BSD, Google's PDFium; pdfplumber's own dependency) for the outline and images.

* pdfminer gives every character with its font name, size and position, which is what
  headings (by size and weight), columns, paragraph gaps and repeated headers/footers are
  found from; pdfplumber adds ruled-table detection (a cell grid from the drawn lines), which
  no other permissively licensed Python library has. All three are maintained: pdfminer.six
  20260107, pdfplumber 0.11.10 (June 2026), pypdfium2 5.15 (November 2026), each among the
  thousand most downloaded PyPI packages.
* PDFium resolves the outline's destinations (explicit, named, GoTo actions) to a page and a
  height, and decodes every image format a PDF can hold (Flate, JPEG, JPEG 2000, CCITT,
  JBIG2, soft masks); pdfminer cannot export most of those.
* PyMuPDF is faster but AGPL. pypdf (BSD) extracts plain text about twice as fast as
  pdfminer but with no font per character, so no headings, and no tables; pypdfium2 alone is
  four times as fast but has no table finder and no drawn lines to build one from.

Measured on a 2-core machine, on the 128 Model 3 manual pages printed by Chromium (350 A4
pages, 2,700 characters a page): characters alone, pdfminer 7.9 pages/s, pypdf 16, pypdfium2
28 (with size and weight); this module end to end 7 pages/s, 50 s for the 350 pages (Chromium
writes one text operator per glyph, the slow case for pdfminer: pdfTeX PDFs read at 22).
Its text matches the source pages word for word (difflib ratio 0.998), tables, lists and
callouts included.

How the text is read, page by page: characters are grouped into rows and rows into segments
(a gap wider than about a character splits a row, so two columns or table cells never run
into one line); text repeated at the top or bottom of many pages and bare page numbers are
dropped; ruled tables are taken out of the text flow as tables; the rest is put into reading
order by recursive XY-cut (columns, when a clear gutter exists, are read one after the
other), then lines become paragraphs, list items and headings. A paragraph that runs on to the
next column or page is re-joined when its last line does not end a sentence.

Sections: one per top-level entry of the outline (a lone root entry over chapters on several
pages, such as the manual's title, is looked through); without an outline, one per heading
of the largest size that is used more than once (a cover title used once names the manual
instead).

Layout: :mod:`._base` (tunables and the records the steps pass along), :mod:`.pages` (one
page: characters to segments, tables, bullets; running headers and footers), :mod:`.images`
(pictures and their captions), :mod:`.layout` (reading order, lines to blocks) and
:mod:`.sections` (outline, sections, markdown); this module runs them in order.
"""

from __future__ import annotations

import io

import pdfplumber
import pypdfium2 as pdfium

from curation.scraping.pdf._base import (
    PdfImage,
    PdfManual,
    PdfRejected,
    PdfSection,
    _Page,
    _Segment,
    _Table,
)
from curation.scraping.pdf.images import (
    _caption_figures,
    _read_images,
)
from curation.scraping.pdf.layout import (
    _body_size_of,
    _build_blocks,
    _Layout,
    _reading_order,
)
from curation.scraping.pdf.pages import (
    _attach_bullets,
    _drop_running_text,
    _read_page,
)
from curation.scraping.pdf.sections import (
    _manual_title,
    _outline,
    _render_section,
    _sections_from_headings,
    _sections_from_outline,
)

__all__ = ["PdfImage", "PdfManual", "PdfRejected", "PdfSection", "pdf_to_sections"]


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def pdf_to_sections(data: bytes, *, file_name: str, max_bytes: int | None = None) -> PdfManual:
    """Read a PDF manual into markdown sections (see the module docstring).

    Raises:
        PdfRejected: for a PDF over ``max_bytes``, not a PDF, truncated or corrupt, encrypted
            (a password is needed to open it), or with no text layer at all (scanned).
    """
    _check_envelope(data, max_bytes)
    try:
        pdfium_doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower() or "security" in str(exc).lower():
            raise PdfRejected("encrypted PDF: it cannot be opened without a password") from exc
        raise PdfRejected(f"not a PDF / truncated or corrupt: {exc}") from exc
    try:
        return _read_manual(data, pdfium_doc, file_name)
    finally:
        pdfium_doc.close()


def _check_envelope(data: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        raise PdfRejected(
            f"PDF is {_megabytes(len(data))} MB, over the limit of {_megabytes(max_bytes)} MB"
        )
    if b"%PDF-" not in data[:1024]:
        detail = "empty file" if not data else "no %PDF- header"
        raise PdfRejected(f"not a PDF / truncated or corrupt: {detail}")
    # The last "%%EOF" ends the file, bar a little trailing junk some writers leave.
    if b"%%EOF" not in data[-16384:]:
        raise PdfRejected(
            "not a PDF / truncated or corrupt: no %%EOF marker at the end (the file is cut off)"
        )


def _megabytes(size: int) -> str:
    value = size / 1_000_000
    text = f"{value:.1f}" if value >= 0.1 else f"{value:.3g}"
    return text.removesuffix(".0")


def _read_manual(data: bytes, pdfium_doc: pdfium.PdfDocument, file_name: str) -> PdfManual:
    notes: list[str] = []
    try:
        plumber = pdfplumber.open(io.BytesIO(data))
    except Exception as exc:  # pdfminer raises many kinds; every one means "cannot read"
        cause = exc.__cause__ or exc.__context__ or exc
        if "password" in f"{type(cause).__name__} {cause}".lower():
            raise PdfRejected("encrypted PDF: it cannot be opened without a password") from exc
        raise PdfRejected(f"not a PDF / truncated or corrupt: {_describe(exc)}") from exc
    with plumber:
        page_count = len(pdfium_doc)
        if page_count == 0:
            raise PdfRejected("not a PDF / truncated or corrupt: it has no pages")
        pages: list[_Page] = []
        bullets_by_page: dict[int, list[tuple[float, float, float, float]]] = {}
        failed = 0
        for index, plumber_page in enumerate(plumber.pages):
            number = index + 1
            try:
                page, bullets = _read_page(plumber_page, number)
            except Exception as exc:  # a broken content stream spoils one page, not the PDF
                failed += 1
                notes.append(f"page {number}: its text could not be read ({_describe(exc)})")
                page, bullets = _Page(number, plumber_page.width, plumber_page.height), []
            finally:
                plumber_page.close()
            pages.append(page)
            bullets_by_page[number] = bullets
        if failed == len(pages):
            raise PdfRejected("not a PDF / truncated or corrupt: no page could be read")
        metadata_title = str(plumber.metadata.get("Title") or "")

    _drop_running_text(pages)
    if not any(isinstance(item, _Segment) for page in pages for item in page.items):
        raise _no_text_layer(page_count)
    figures_by_page = _read_images(pdfium_doc, pages, notes, bullets_by_page)
    for page in pages:
        _attach_bullets(page, bullets_by_page[page.number])
    for page in pages:
        figures = figures_by_page.get(page.number, [])
        _caption_figures(page, figures)
        page.items.extend(figures)
        page.items = _reading_order(page.items, _body_size_of(page.items))
        if not page.items:
            notes.append(f"page {page.number}: no text or figure on this page")
        elif not any(isinstance(item, _Segment | _Table) for item in page.items):
            notes.append(f"page {page.number}: no text on this page (figures only, or scanned)")

    layout = _Layout.measure(pages)
    blocks = _build_blocks(pages, layout)
    toc = _outline(pdfium_doc, pages)
    title = _manual_title(metadata_title, toc.root_title, blocks, layout, file_name)
    if toc.entries:
        sections = _sections_from_outline(blocks, toc.entries, layout, title)
    else:
        sections = _sections_from_headings(blocks, layout, title)
    rendered = []
    for section_title, section_blocks, start_page in sections:
        section = _render_section(section_title, section_blocks, start_page)
        if section is None:
            notes.append(f"page {start_page}: section {section_title!r} has no text; skipped")
        else:
            rendered.append(section)
    if not rendered:
        raise _no_text_layer(page_count)
    return PdfManual(title=title, page_count=page_count, sections=rendered, notes=notes)


def _no_text_layer(page_count: int) -> PdfRejected:
    pages = "1 page" if page_count == 1 else f"{page_count} pages"
    return PdfRejected(f"no text layer: a scanned PDF ({pages}, no text); ingest nothing from it")


def _describe(exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    text = str(cause).strip() or type(cause).__name__
    return f"{type(cause).__name__}: {text}"[:300]
