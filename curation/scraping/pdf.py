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
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Final

import pdfplumber
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, UnidentifiedImageError

from curation.images import is_icon
from curation.scraping.markdown import _LABEL_ONLY_RE, _apply_label, figure_caption_line
from curation.scraping.text import PageRejected, normalize_text

__all__ = ["PdfImage", "PdfManual", "PdfRejected", "PdfSection", "pdf_to_sections"]


class PdfRejected(PageRejected):
    """Nothing can be ingested from this PDF; the message names the problem."""


@dataclass(frozen=True)
class PdfImage:
    """A picture found on a page: ``data`` is a standalone PNG or JPEG file, ``key`` the
    SHA-256 of ``data`` in hex, ``caption`` the text that labels it (or "")."""

    key: str
    data: bytes
    page: int
    caption: str


@dataclass(frozen=True)
class PdfSection:
    """One chapter of the manual: ``markdown`` starts with ``# {title}`` and holds a
    ``<!-- page N -->`` line before the first block that starts on each page (a paragraph
    re-joined across a page break counts for the page it starts on), and a
    ``<!-- figure KEY -->`` line where each of ``figures`` stands."""

    title: str
    markdown: str
    first_page: int
    last_page: int
    figures: tuple[PdfImage, ...]


@dataclass(frozen=True)
class PdfManual:
    """A whole PDF: its title, page count, sections, and notes on what was skipped."""

    title: str
    page_count: int
    sections: list[PdfSection]
    notes: list[str]


# --------------------------------------------------------------------------------------------
# Tunables (in PDF points or as fractions of a font size, so they hold at any page size)
# --------------------------------------------------------------------------------------------

# A horizontal gap of more than this many font sizes ends a segment: a column gutter, a table
# cell, a label set apart from its text. Word spaces are about 0.25-0.35.
_SEGMENT_GAP: Final = 0.8
# A gap of more than this many font sizes between two glyphs is a word space (PDFs that draw
# no space characters).
_WORD_GAP: Final = 0.17
# Text this much larger than the body is a heading; the "lead" paragraph of a page (5% larger)
# is not.
_HEADING_RATIO: Final = 1.12
# Header/footer zone: the top and bottom of each page, as a fraction of its height.
_MARGIN_ZONE: Final = 0.1
# Text in that zone recurring on this many pages (fewer in very short PDFs) is a running
# header or footer.
_RECURRING_PAGES: Final = 3
# A gutter must be this many body font sizes wide, and leave this share of the region's width
# on each side, to split a region into columns.
_MIN_GUTTER: Final = 0.75
_MIN_COLUMN_SHARE: Final = 0.2
# Images: larger ones are skipped with a note (a decompression bomb or a scanned poster), as
# are those past a page's count or the PDF's byte budget (figures stay in memory until the
# sections are stored).
MAX_IMAGE_PIXELS: Final = 40_000_000
MAX_FIGURES_PER_PAGE: Final = 30
MAX_IMAGE_BYTES: Final = 200_000_000
# Drawn shapes at most this big (points) to the left of a line are list bullets.
_BULLET_MAX_SIDE: Final = 8.0
# A figure shown smaller than this (points, both sides) is an icon, not a figure.
_ICON_MAX_POINTS: Final = 20.0

_BOLD_RE: Final = re.compile(
    r"bold|black|heavy|semibold|demi|extrabold|[-,_]bd\b|,b$|^cmbx|^cmb\d|^lmbx", re.IGNORECASE
)
_ITALIC_RE: Final = re.compile(r"italic|oblique", re.IGNORECASE)
# Bullets as text: discs, circles and squares, dashes, and the Symbol/Wingdings private-use
# bullets that Word writes.
_BULLET_CHARS: Final = (
    "\u2022\u25cf\u25cb\u25e6\u25aa\u25a0\u25a1\u2023\u2043\u2219\u00b7"
    "\uf0b7\uf0a7\uf076\uf0d8\u27a2\u25ba\u25b6*-\u2013\u2014"
)
_BULLET_RE: Final = re.compile(f"^[{re.escape(_BULLET_CHARS)}]\\s+(?=\\S)")
_BULLET_ONLY_RE: Final = re.compile(f"^[{re.escape(_BULLET_CHARS)}]$")
_NUMBER_RE: Final = re.compile(r"^(\d{1,2}|[a-z])([.)])\s+(?=\S)")
_NUMBER_ONLY_RE: Final = re.compile(r"^(\d{1,2}|[a-z])[.)]$")
_PAGE_NUMBER_RE: Final = re.compile(
    r"^(?:page\s*)?(?:\d{1,4}|[ivxlc]{1,7})(?:\s*(?:/|of)\s*\d{1,4})?$", re.IGNORECASE
)
_TOC_LINE_RE: Final = re.compile(r"(?:\.\s?){4,}\s*(?:\d{1,4}|[ivxlc]{1,6})$")
# A glyph without a Unicode mapping, as pdfminer writes it.
_CID_RE: Final = re.compile(r"\(cid:\d+\)")
# "2.1 ", "3. ", "A.2 ", "Chapter 4: ", "Appendix B " before a heading's words.
_SECTION_NUMBER_RE: Final = re.compile(
    r"^(?:(?:chapter|section|appendix|part)\s+)?(?:\d+|[a-z])(?:\.\d+)*[.:)]?\s+", re.I
)
_SENTENCE_END_RE: Final = re.compile(r"[.!?:;][\"')\]]*$")
_HYPHENATED_RE: Final = re.compile("([^\\W_]+)[-\u2010]$")
_TOKEN_RE: Final = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")
_WORD_START_RE: Final = re.compile(r"^(\w+)")
_ALNUM_RE: Final = re.compile(r"[^0-9a-z]+")
_DIGITS_RE: Final = re.compile(r"\d+")
_JUNK_TITLE_RE: Final = re.compile(
    r"^(untitled|microsoft word\b.*|.*\.(docx?|indd|pdf|qxd|rtf|odt))$", re.IGNORECASE
)
_MARKDOWN_LOOKALIKE_RE: Final = re.compile(r"^(#{1,6}(\s|$)|`{3,}|~{3,}|<!--|>)")


# --------------------------------------------------------------------------------------------
# Layout items
# --------------------------------------------------------------------------------------------


@dataclass
class _Segment:
    """A run of text on one baseline, not crossing a gutter: the unit of layout."""

    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    text: str
    size: float
    bold: bool
    italic: bool
    marker: str = ""  # "-" (bullet), "3." / "b)" (numbered), "" (none)
    marker_x0: float = 0.0


@dataclass
class _Table:
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    rows: list[list[str]]
    open_bottom: bool = False  # its last row runs on to the next page


@dataclass
class _Figure:
    page: int
    x0: float
    top: float
    x1: float
    bottom: float
    key: str
    data: bytes
    caption: str = ""


_Item = _Segment | _Table | _Figure


@dataclass
class _Page:
    number: int
    width: float
    height: float
    items: list[_Item] = field(default_factory=list)
    # Where images with a transparency mask stand: those are exported as rendered.
    masked: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class _Block:
    """A paragraph, heading, list item, table or figure, in reading order."""

    kind: str  # "text", "item", "table", "figure", "heading" (synthetic, from the outline)
    page: int
    lines: list[_Segment] = field(default_factory=list)
    text: str = ""
    last_page: int = 0
    marker: str = ""
    marker_x0: float = 0.0
    level: int = 0  # heading level once decided: 1 (section title), 2, 3
    rows: list[list[str]] = field(default_factory=list)
    figure: _Figure | None = None
    columns: int = 0
    open_end: bool = False  # a table whose last row carries on at the top of the next page

    @property
    def first(self) -> _Segment:
        return self.lines[0]

    @property
    def last(self) -> _Segment:
        return self.lines[-1]


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


# --------------------------------------------------------------------------------------------
# One page: characters -> segments, tables, bullets
# --------------------------------------------------------------------------------------------


def _read_page(page: pdfplumber.page.Page, number: int) -> tuple[_Page, list[tuple]]:
    result = _Page(number, float(page.width), float(page.height))
    width, height = float(page.width), float(page.height)
    # Upright glyphs on the page (rotated side tabs and text clipped off the page are not
    # part of the reading text).
    chars = [
        c
        for c in page.chars
        if c.get("upright", True)
        and c["text"]
        and c["x1"] > 0
        and c["x0"] < width
        and c["bottom"] > 0
        and c["top"] < height
    ]
    tables = _find_tables(page, number) if _has_rulings(page) else []
    segments = []
    for row in _rows(chars):
        row_segments = _split_row(row, number)
        if any(_TOC_LINE_RE.search(segment.text) for segment in row_segments):
            continue  # a table of contents line ("2.1 Charging ....... 45") says nothing new
        for segment in row_segments:
            if not any(_inside(segment, table) for table in tables):
                segments.append(segment)
    result.items.extend(segments)
    result.items.extend(tables)
    result.masked = [
        (image["x0"], image["top"], image["x1"], image["bottom"])
        for image in page.images
        if {"SMask", "Mask"} & set(getattr(image.get("stream"), "attrs", {}))
    ]
    bullets = [
        (obj["x0"], obj["top"], obj["x1"], obj["bottom"])
        for obj in (*page.curves, *page.rects)
        if 1.0 <= obj["width"] <= _BULLET_MAX_SIDE
        and 1.0 <= obj["height"] <= _BULLET_MAX_SIDE
        and abs(obj["width"] - obj["height"]) <= 2.0
    ]
    return result, bullets


def _rows(chars: list[dict]) -> list[list[dict]]:
    """Characters grouped into rows that share a baseline (a row may span several columns)."""
    rows: list[list[dict]] = []
    refs: list[tuple[float, float]] = []
    for char in sorted(chars, key=lambda c: (round(c["top"], 1), c["x0"])):
        top, bottom = char["top"], char["bottom"]
        height = max(bottom - top, 0.1)
        for index in range(len(rows) - 1, max(-1, len(rows) - 6), -1):
            ref_top, ref_bottom = refs[index]
            overlap = min(bottom, ref_bottom) - max(top, ref_top)
            if overlap >= 0.5 * min(height, ref_bottom - ref_top):
                rows[index].append(char)
                break
        else:
            rows.append([char])
            refs.append((top, bottom))
    return rows


def _split_row(row: list[dict], page: int) -> list[_Segment]:
    row.sort(key=lambda c: c["x0"])
    segments: list[_Segment] = []
    current: list[dict] = []
    last_visible: dict | None = None
    for char in row:
        if char["text"].isspace():
            if current:
                current.append(char)
            continue
        if last_visible is not None:
            # A glyph drawn twice (fake bold) lands on itself.
            if (
                char["text"] == last_visible["text"]
                and abs(char["x0"] - last_visible["x0"]) < 0.5
                and abs(char["top"] - last_visible["top"]) < 0.5
            ):
                continue
            gap = char["x0"] - last_visible["x1"]
            if gap > _SEGMENT_GAP * max(last_visible["size"], char["size"]):
                segments.append(_segment(current, page))
                current = []
        current.append(char)
        last_visible = char
    if current:
        segments.append(_segment(current, page))
    return _merge_marker_segments([s for s in segments if s.text])


def _segment(chars: list[dict], page: int) -> _Segment:
    visible = [c for c in chars if not c["text"].isspace()]
    parts: list[str] = []
    previous: dict | None = None
    space: dict | None = None
    for char in chars:
        if char["text"].isspace():
            space = char
            continue
        if previous is not None:
            gap = char["x0"] - previous["x1"]
            # A space the next glyph is drawn over is no space (Chromium writes one at each
            # soft hyphen of a word).
            real_space = space is not None and _between(space, previous, char)
            if real_space or gap > _WORD_GAP * max(previous["size"], char["size"]):
                parts.append(" ")
        parts.append(char["text"])
        previous = char
        space = None
    sizes = Counter(round(c["size"] * 2) / 2 for c in visible)
    size = sizes.most_common(1)[0][0] if sizes else 0.0
    bold = sum(1 for c in visible if _BOLD_RE.search(_font(c))) >= 0.75 * len(visible)
    italic = sum(1 for c in visible if _ITALIC_RE.search(_font(c))) >= 0.75 * len(visible)
    text = " ".join(_CID_RE.sub("", "".join(parts)).split())
    segment = _Segment(
        page=page,
        x0=min(c["x0"] for c in visible),
        top=min(c["top"] for c in visible),
        x1=max(c["x1"] for c in visible),
        bottom=max(c["bottom"] for c in visible),
        text=text,
        size=size,
        bold=bold,
        italic=italic,
    )
    _take_text_marker(segment)
    return segment


def _between(space: dict, previous: dict, following: dict) -> bool:
    """Whether a space character really stands between two glyphs, not under one of them."""
    half = (space["x1"] - space["x0"]) / 2
    return space["x0"] >= previous["x1"] - half and following["x0"] >= space["x1"] - half


def _font(char: dict) -> str:
    name = str(char.get("fontname", ""))
    return name.split("+", 1)[-1]


def _take_text_marker(segment: _Segment) -> None:
    """A segment that starts with a bullet or "3." is a list item: keep the marker apart."""
    match = _BULLET_RE.match(segment.text)
    rest = segment.text[match.end() :] if match else ""
    # A dash before a lowercase word is punctuation that wrapped to the line's start.
    if match and not (segment.text[0] in "-*\u2013\u2014" and rest[:1].islower()):
        segment.marker, segment.marker_x0 = "-", segment.x0
        segment.text = segment.text[match.end() :]
        return
    match = _NUMBER_RE.match(segment.text)
    if match:
        segment.marker, segment.marker_x0 = match.group(1) + match.group(2), segment.x0
        segment.text = segment.text[match.end() :]


def _merge_marker_segments(segments: list[_Segment]) -> list[_Segment]:
    """A lone "1." or bullet set apart from its text joins the segment that follows it."""
    merged: list[_Segment] = []
    index = 0
    while index < len(segments):
        segment = segments[index]
        following = segments[index + 1] if index + 1 < len(segments) else None
        lone = _BULLET_ONLY_RE.match(segment.text) or _NUMBER_ONLY_RE.match(segment.text)
        if (
            lone
            and following is not None
            and not following.marker
            and following.x0 - segment.x1 <= 4 * max(segment.size, 1.0)
        ):
            is_bullet = _BULLET_ONLY_RE.match(segment.text) is not None
            following.marker = "-" if is_bullet else segment.text
            following.marker_x0 = segment.x0
            merged.append(following)
            index += 2
            continue
        merged.append(segment)
        index += 1
    return merged


def _has_rulings(page: pdfplumber.page.Page) -> bool:
    return len(page.rects) + len(page.lines) >= 3


def _find_tables(page: pdfplumber.page.Page, number: int) -> list[_Table]:
    found_tables = page.find_tables()
    # A row cut by the page break has its side borders but no bottom line: close it there.
    open_ends = [_open_bottom(page, found.bbox) for found in found_tables]
    if any(end is not None for end in open_ends):
        lines = [end for end in open_ends if end is not None]
        found_tables = page.find_tables({"explicit_horizontal_lines": lines})
        open_ends = [
            next((end for end in lines if abs(found.bbox[3] - end) < 1), None)
            for found in found_tables
        ]
    tables = []
    for found, open_end in zip(found_tables, open_ends, strict=True):
        # Cells keep their line breaks until the document's vocabulary can tell a split
        # word from a hyphenated one (see _join_lines).
        rows = [
            [(cell or "").strip() for cell in row]
            for row in found.extract()
            if any(cell and cell.strip() for cell in row)
        ]
        width = max((len(row) for row in rows), default=0)
        filled = sum(1 for row in rows for cell in row if cell)
        # A box drawn round a callout or a figure is a one-cell "table": not a table.
        if len(rows) < 2 or width < 2 or filled < 3:
            continue
        x0, top, x1, bottom = found.bbox
        table = _Table(number, x0, top, x1, bottom, [_pad(row, width) for row in rows])
        table.open_bottom = open_end is not None
        tables.append(table)
    return tables


def _open_bottom(page: pdfplumber.page.Page, bbox: tuple[float, ...]) -> float | None:
    """Where the side borders of a table's cut last row end, when they run on below it."""
    x0, _, x1, bottom = bbox
    borders = [
        (round(edge["x0"]), edge["bottom"])
        for edge in page.edges
        if edge["orientation"] == "v"
        and x0 - 1 <= edge["x0"] <= x1 + 1
        and abs(edge["top"] - bottom) <= 2
        and edge["bottom"] > bottom + 5
    ]
    if len({x for x, _ in borders}) < 2:
        return None
    return max(end for _, end in borders)


def _cell_text(cell: str, words: _Words) -> str:
    """A pipe-table cell is one line: its lines joined, pipes escaped."""
    if not cell:
        return ""
    return normalize_text(_join_lines(cell.split("\n"), words)).replace("|", "\\|")


def _pad(row: list[str], width: int) -> list[str]:
    return row + [""] * (width - len(row))


def _inside(segment: _Segment, box: _Table | _Figure) -> bool:
    middle_x = (segment.x0 + segment.x1) / 2
    middle_y = (segment.top + segment.bottom) / 2
    return box.x0 - 1 <= middle_x <= box.x1 + 1 and box.top - 1 <= middle_y <= box.bottom + 1


def _attach_bullets(page: _Page, bullets: Iterable[tuple[float, float, float, float]]) -> None:
    """A small drawn disc or square just left of a line is that line's list bullet."""
    segments = [item for item in page.items if isinstance(item, _Segment)]
    for x0, top, x1, bottom in bullets:
        middle = (top + bottom) / 2
        row = [s for s in segments if s.top - 1 <= middle <= s.bottom + 1]
        best: _Segment | None = None
        for segment in row:
            gap = segment.x0 - x1
            if 0 <= gap <= 3 * max(segment.size, 1.0) and (best is None or segment.x0 < best.x0):
                best = segment
        # A bullet starts its line: a picture right after text on the same line is inline.
        if best is None or best.marker:
            continue
        if any(0 <= x0 - s.x1 <= 2 * max(s.size, 1.0) for s in row if s is not best):
            continue
        best.marker, best.marker_x0 = "-", x0


# --------------------------------------------------------------------------------------------
# Running headers and footers
# --------------------------------------------------------------------------------------------


def _drop_running_text(pages: list[_Page]) -> None:
    """Remove text repeated at the top or bottom of pages, and bare page numbers there.

    Running text recurs at the same height on at least three pages (two in a short PDF), or
    on two pages at exactly the same height when it stands apart from the text below or above
    it (a chapter's running header over a two-page chapter).
    """
    needed = _RECURRING_PAGES if len(pages) > 4 else 2
    seen: dict[tuple[str, str], list[tuple[int, float, bool]]] = defaultdict(list)
    candidates: dict[int, list[tuple[_Segment, tuple[str, str]]]] = defaultdict(list)
    for page in pages:
        for segment, zone, apart in _margin_segments(page):
            key = (zone, _DIGITS_RE.sub("#", segment.text.lower()))
            seen[key].append((page.number, segment.top, apart))
            candidates[page.number].append((segment, key))
    running = set()
    for key, places in seen.items():
        if len({number for number, _, _ in places}) < 2:
            continue
        tops = sorted(top for _, top, _ in places)
        # The same place on most pages (odd and even pages may differ in x, never in y).
        middle = tops[len(tops) // 2]
        near = {number for number, top, _ in places if abs(top - middle) <= 6}
        exact = {number for number, top, apart in places if abs(top - middle) <= 1.5 and apart}
        if len(near) >= needed or len(exact) >= 2:
            running.add(key)
    for page in pages:
        drop = {
            id(segment)
            for segment, key in candidates.get(page.number, [])
            if key in running or _PAGE_NUMBER_RE.match(segment.text)
        }
        if drop:
            page.items = [item for item in page.items if id(item) not in drop]


def _margin_segments(page: _Page) -> list[tuple[_Segment, str, bool]]:
    """The segments in the first and last two rows of a page that lie in its margins, with
    whether each stands apart (more than a line's gap) from the page's other text."""
    segments = sorted(
        (item for item in page.items if isinstance(item, _Segment)), key=lambda s: s.top
    )
    if not segments:
        return []
    row_tops = sorted({round(segment.top) for segment in segments})
    top_rows = set(row_tops[:2])
    bottom_rows = set(row_tops[-2:])
    found = []
    for segment in segments:
        row = round(segment.top)
        if row in top_rows and segment.bottom <= page.height * _MARGIN_ZONE:
            below = [s.top for s in segments if s.top > segment.bottom]
            apart = not below or min(below) - segment.bottom >= 1.2 * segment.size
            found.append((segment, "top", apart))
        elif row in bottom_rows and segment.top >= page.height * (1 - _MARGIN_ZONE):
            above = [s.bottom for s in segments if s.bottom < segment.top]
            apart = not above or segment.top - max(above) >= 1.2 * segment.size
            found.append((segment, "bottom", apart))
    return found


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


@dataclass
class _ImageReader:
    """Reads a PDF's images once each (a logo on every page is decoded once), within limits
    on how many a page and how many bytes the whole PDF may keep."""

    notes: list[str]
    bullets_by_page: dict[int, list[tuple]]
    exported: dict[bytes, bytes | None] = field(default_factory=dict)
    kept_bytes: int = 0

    def read(self, image: pdfium.PdfImage, page: _Page) -> _Figure | None:
        try:
            x0, top, x1, bottom = _image_box(image, page)
            width, height = image.get_px_size()
        except pdfium.PdfiumError:
            self.notes.append(f"page {page.number}: an image could not be read; skipped")
            return None
        shown_width, shown_height = x1 - x0, bottom - top
        if shown_width <= _BULLET_MAX_SIDE * 1.6 and shown_height <= _BULLET_MAX_SIDE * 1.6:
            self.bullets_by_page[page.number].append((x0, top, x1, bottom))
        if is_icon((width, height)) or max(shown_width, shown_height) < _ICON_MAX_POINTS:
            return None
        if width * height > MAX_IMAGE_PIXELS:
            self.notes.append(
                f"page {page.number}: an image of {width}x{height} px is too large; skipped"
            )
            return None
        if shown_width * shown_height > 0.85 * page.width * page.height and any(
            isinstance(item, _Segment) for item in page.items
        ):
            # The page's scan under its recognised text, or a background: not a figure.
            self.notes.append(f"page {page.number}: a full-page image under the text; skipped")
            return None
        masked = any(
            abs(x0 - left) < 2 and abs(top - upper) < 2 and abs(x1 - right) < 2
            for left, upper, right, _ in page.masked
        )
        data = self._export(image, masked=masked, size=(width, height))
        if data is None:
            self.notes.append(f"page {page.number}: an image could not be read; skipped")
            return None
        if self.kept_bytes + len(data) > MAX_IMAGE_BYTES:
            self.notes.append(
                f"page {page.number}: an image was skipped: the PDF's images are over "
                f"{MAX_IMAGE_BYTES} bytes"
            )
            return None
        self.kept_bytes += len(data)
        key = hashlib.sha256(data).hexdigest()
        return _Figure(page.number, x0, top, x1, bottom, key=key, data=data)

    def _export(
        self, image: pdfium.PdfImage, *, masked: bool, size: tuple[int, int]
    ) -> bytes | None:
        try:
            raw = bytes(image.get_data(decode_simple=False))
        except pdfium.PdfiumError:
            raw = b""
        identity = hashlib.sha256(raw + repr((size, masked)).encode()).digest() if raw else b""
        if identity and identity in self.exported:
            return self.exported[identity]
        try:
            data: bytes | None = _export_image(image, masked=masked)
        except Exception:  # any decoder failure: the text must go on without this image
            data = None
        if identity:
            self.exported[identity] = data
        return data


def _read_images(
    document: pdfium.PdfDocument,
    pages: list[_Page],
    notes: list[str],
    bullets_by_page: dict[int, list[tuple]],
) -> dict[int, list[_Figure]]:
    """Every picture big enough to be a figure, as a PNG or JPEG file, by page.

    An image repeated on many pages (a logo in the header) is decoration and left out, like
    the running header it belongs to.
    """
    reader = _ImageReader(notes, bullets_by_page)
    found: dict[int, list[_Figure]] = defaultdict(list)
    pages_of_key: dict[str, set[int]] = defaultdict(set)
    for page in pages:
        try:
            pdfium_page = document[page.number - 1]
        except pdfium.PdfiumError:
            continue
        try:
            for image in pdfium_page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]):
                if len(found[page.number]) >= MAX_FIGURES_PER_PAGE:
                    notes.append(
                        f"page {page.number}: over {MAX_FIGURES_PER_PAGE} images; the rest skipped"
                    )
                    break
                figure = reader.read(image, page)
                if figure is not None:
                    found[page.number].append(figure)
                    pages_of_key[figure.key].add(page.number)
        except pdfium.PdfiumError as exc:
            notes.append(f"page {page.number}: its images could not be listed ({exc})")
        finally:
            pdfium_page.close()
    needed = _RECURRING_PAGES if len(pages) > 4 else len(pages) + 1
    for number, figures in found.items():
        found[number] = [f for f in figures if len(pages_of_key[f.key]) < needed]
    return found


def _image_box(image: pdfium.PdfImage, page: _Page) -> tuple[float, float, float, float]:
    left, bottom, right, top = image.get_bounds()
    # Objects inside a form XObject are placed by the forms' matrices around them.
    container = image.container
    if container is not None:
        corners = [(left, bottom), (right, top), (left, top), (right, bottom)]
        while container is not None:
            matrix = container.get_matrix()
            corners = [matrix.on_point(x, y) for x, y in corners]
            container = container.container
        xs = [x for x, _ in corners]
        ys = [y for _, y in corners]
        left, right, bottom, top = min(xs), max(xs), min(ys), max(ys)
    return left, page.height - top, right, page.height - bottom


def _export_image(image: pdfium.PdfImage, *, masked: bool) -> bytes:
    """The image as a standalone file: the JPEG as stored when it is one, else a PNG of its
    pixels (rendered with its transparency when it has a mask)."""
    if image.get_filters() == ["DCTDecode"]:
        raw = bytes(image.get_data(decode_simple=False))
        with Image.open(io.BytesIO(raw)) as opened:
            if opened.mode in {"RGB", "L"}:
                opened.load()
                return raw
    picture = image.get_bitmap(render=masked).to_pil()
    if picture.mode not in {"RGB", "RGBA", "L", "LA"}:
        picture = picture.convert("RGBA" if "A" in picture.mode else "RGB")
    if picture.width * picture.height == 0:
        raise UnidentifiedImageError("an empty image")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=3)  # re-encoded for the web later
    return buffer.getvalue()


def _caption_figures(page: _Page, figures: list[_Figure]) -> None:
    """Give each figure the text that labels it: "Figure 3 ..." right below or above it, or a
    short line right below it in a smaller or italic type. That text leaves the text flow."""
    segments = [item for item in page.items if isinstance(item, _Segment)]
    if not segments or not figures:
        return
    body = _body_size_of(segments)
    taken: set[int] = set()
    for figure in figures:
        caption_lines = _caption_below(figure, segments, body, taken) or _caption_above(
            figure, segments, body, taken
        )
        if caption_lines:
            taken.update(id(line) for line in caption_lines)
            figure.caption = normalize_text(_join_lines([line.text for line in caption_lines]))
    if taken:
        page.items = [item for item in page.items if id(item) not in taken]


def _overlaps_x(segment: _Segment, figure: _Figure) -> bool:
    return segment.x0 < figure.x1 and segment.x1 > figure.x0


def _caption_below(
    figure: _Figure, segments: list[_Segment], body: float, taken: set[int]
) -> list[_Segment]:
    below = sorted(
        (
            s
            for s in segments
            if id(s) not in taken
            and _overlaps_x(s, figure)
            and -2 <= s.top - figure.bottom <= 1.6 * body
        ),
        key=lambda s: s.top,
    )
    if not below:
        return []
    first = below[0]
    numbered = re.match(r"(?i)(figure|fig\.|illustration|image)\s*\d", first.text)
    distinct = first.size < body - 0.4 or first.italic
    if not numbered and not (distinct and len(first.text.split()) <= 20):
        return []
    lines = [first]
    for segment in sorted(segments, key=lambda s: s.top):
        if segment.top <= lines[-1].top or id(segment) in taken:
            continue
        if (
            abs(segment.size - first.size) <= 0.3
            and segment.italic == first.italic
            and 0 <= segment.top - lines[-1].bottom <= 0.6 * first.size
            and _overlaps_x(segment, figure)
            and len(lines) < 4
        ):
            lines.append(segment)
    return lines


def _caption_above(
    figure: _Figure, segments: list[_Segment], body: float, taken: set[int]
) -> list[_Segment]:
    for segment in segments:
        if (
            id(segment) not in taken
            and _overlaps_x(segment, figure)
            and -2 <= figure.top - segment.bottom <= 1.6 * body
            and re.match(r"(?i)(figure|fig\.)\s*\d", segment.text)
        ):
            return [segment]
    return []


# --------------------------------------------------------------------------------------------
# Reading order: recursive XY-cut
# --------------------------------------------------------------------------------------------


def _body_size_of(items: Iterable[_Item]) -> float:
    sizes = Counter()
    for item in items:
        if isinstance(item, _Segment):
            sizes[item.size] += len(item.text)
    return sizes.most_common(1)[0][0] if sizes else 10.0


def _reading_order(items: list[_Item], body_size: float, depth: int = 0) -> list[_Item]:
    """Items in reading order: a region splits first at a clear column gutter (left column
    first), else at its widest horizontal gap; what cannot be cut is read top to bottom."""
    if len(items) <= 1:
        return list(items)
    if depth > 60:
        return sorted(items, key=lambda item: (item.top, item.x0))
    gutter = _column_gutter(items, body_size)
    if gutter is not None:
        left = [item for item in items if item.x1 <= gutter]
        right = [item for item in items if item.x1 > gutter]
        return _reading_order(left, body_size, depth + 1) + _reading_order(
            right, body_size, depth + 1
        )
    bands = _horizontal_bands(items)
    if len(bands) == 1:
        return sorted(items, key=lambda item: (round(item.top), item.x0))
    ordered: list[_Item] = []
    for band in bands:
        ordered.extend(_reading_order(band, body_size, depth + 1))
    return ordered


def _column_gutter(items: list[_Item], body_size: float) -> float | None:
    """The x of the widest empty vertical strip that splits ``items`` into two columns."""
    spans = sorted((item.x0, item.x1) for item in items)
    region_x0 = spans[0][0]
    region_x1 = max(x1 for _, x1 in spans)
    width = region_x1 - region_x0
    if width <= 0:
        return None
    best: tuple[float, float] | None = None
    reach = spans[0][1]
    for x0, x1 in spans[1:]:
        gap = x0 - reach
        if (
            gap >= _MIN_GUTTER * body_size
            and reach - region_x0 >= _MIN_COLUMN_SHARE * width
            and region_x1 - x0 >= _MIN_COLUMN_SHARE * width
            and (best is None or gap > best[0])
        ):
            best = (gap, reach + gap / 2)
        reach = max(reach, x1)
    if best is None:
        return None
    cut = best[1]
    # Two columns each have text: a lone picture beside a paragraph is not a column layout
    # unless both sides hold several items.
    left = sum(1 for item in items if item.x1 <= cut)
    right = len(items) - left
    if min(left, right) < 2:
        return None
    return cut


def _horizontal_bands(items: list[_Item]) -> list[list[_Item]]:
    """Split at the widest horizontal gaps (those within 10% of the widest)."""
    ordered = sorted(items, key=lambda item: item.top)
    gaps: list[tuple[float, int]] = []
    reach = ordered[0].bottom
    for index in range(1, len(ordered)):
        gap = ordered[index].top - reach
        if gap > 0.5:
            gaps.append((gap, index))
        reach = max(reach, ordered[index].bottom)
    if not gaps:
        return [items]
    widest = max(gap for gap, _ in gaps)
    cuts = [index for gap, index in gaps if gap >= 0.9 * widest]
    bands = []
    start = 0
    for cut in cuts:
        bands.append(ordered[start:cut])
        start = cut
    bands.append(ordered[start:])
    return bands


# --------------------------------------------------------------------------------------------
# Lines -> blocks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Words:
    """The words of a document, to tell a word the typesetter split at a line end ("charg-|ing")
    from a hyphenated one broken at its hyphen ("high-|voltage")."""

    vocabulary: frozenset[str]
    # Whether the typesetter split words at line ends: some split word is used whole
    # elsewhere in the document, more often than a broken compound is. Without that evidence
    # every hyphen at a line end is taken for the text's own (a browser breaks only there).
    typeset: bool

    def keeps_hyphen(self, head: str, tail: str) -> bool:
        if head + tail in self.vocabulary:
            return False
        if f"{head}-{tail}" in self.vocabulary or not self.typeset:
            return True
        # A typesetter's split leaves halves that are no words ("manu-al", "charg-ing").
        return min(len(head), len(tail)) >= 3 and {head, tail} <= self.vocabulary

    @classmethod
    def of(cls, pages: list[_Page]) -> _Words:
        vocabulary: set[str] = set()
        breaks: list[tuple[str, str]] = []
        for page in pages:
            segments = [item for item in page.items if isinstance(item, _Segment)]
            for segment, following in zip(segments, segments[1:], strict=False):
                vocabulary.update(_inner_words(segment.text))
                hyphenated = _HYPHENATED_RE.search(segment.text)
                start = _WORD_START_RE.match(following.text)
                if hyphenated and start and following.text[:1].islower():
                    breaks.append((hyphenated.group(1).lower(), start.group(1).lower()))
            if segments:
                vocabulary.update(_inner_words(segments[-1].text))
        joined = sum(1 for head, tail in breaks if head + tail in vocabulary)
        compounds = sum(1 for head, tail in breaks if f"{head}-{tail}" in vocabulary)
        return cls(frozenset(vocabulary), joined > compounds)


@dataclass
class _Layout:
    """Typographic facts of the whole document, measured once."""

    body_size: float
    paragraph_gap: float  # a vertical gap wider than this ends a paragraph
    words: _Words

    @classmethod
    def measure(cls, pages: list[_Page]) -> _Layout:
        sizes: Counter[float] = Counter()
        for page in pages:
            for item in page.items:
                if isinstance(item, _Segment):
                    sizes[item.size] += len(item.text)
        body = sizes.most_common(1)[0][0] if sizes else 10.0
        gaps: Counter[float] = Counter()
        for page in pages:
            previous: _Segment | None = None
            for item in page.items:
                if not isinstance(item, _Segment):
                    previous = None
                    continue
                if (
                    previous is not None
                    and abs(item.size - body) < 0.3
                    and abs(previous.size - body) < 0.3
                    and abs(item.x0 - previous.x0) < body
                    and 0 <= item.top - previous.bottom < 2 * body
                ):
                    gaps[round(item.top - previous.bottom, 1)] += 1
                previous = item
        # The commonest gap between lines is the leading, unless the text is all one-line
        # paragraphs; no body text is set looser than half its size.
        leading = min(gaps.most_common(1)[0][0], 0.5 * body) if gaps else 0.3 * body
        return cls(body, leading + 0.4 * body, _Words.of(pages))

    def is_heading_size(self, segment: _Segment) -> bool:
        return segment.size >= self.body_size * _HEADING_RATIO


def _inner_words(text: str) -> Iterable[str]:
    """The words of a line but its first and last, which may be halves of a split word."""
    for token in _TOKEN_RE.findall(text.lower())[1:-1]:
        yield token
        if "-" in token:
            yield from (part for part in token.split("-") if part)


def _build_blocks(pages: list[_Page], layout: _Layout) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    for page in pages:
        for item in page.items:
            if isinstance(item, _Table):
                current = None
                previous = blocks[-1] if blocks else None
                if (
                    previous is not None
                    and previous.kind == "table"
                    and previous.last_page == page.number - 1
                    and previous.columns == len(item.rows[0])
                    and page.items
                    and item is _first_content(page)
                ):
                    rows = item.rows[1:] if item.rows[0] == previous.rows[0] else item.rows
                    if previous.open_end and rows:  # the cut row's rest: cell by cell
                        previous.rows[-1] = [
                            "\n".join(part for part in (head, tail) if part)
                            for head, tail in zip(previous.rows[-1], rows[0], strict=True)
                        ]
                        rows = rows[1:]
                    previous.rows.extend(rows)
                    previous.last_page = page.number
                    previous.open_end = item.open_bottom
                    continue
                blocks.append(
                    _Block(
                        "table",
                        page.number,
                        last_page=page.number,
                        rows=item.rows,
                        columns=len(item.rows[0]),
                        open_end=item.open_bottom,
                    )
                )
                continue
            if isinstance(item, _Figure):
                current = None
                blocks.append(_Block("figure", page.number, last_page=page.number, figure=item))
                continue
            if current is not None and _continues(current, item, layout):
                current.lines.append(item)
                current.last_page = page.number
                continue
            current = _Block(
                "item" if item.marker else "text",
                page.number,
                lines=[item],
                last_page=page.number,
                marker=item.marker,
                marker_x0=item.marker_x0,
            )
            blocks.append(current)
    for block in blocks:
        if block.lines:
            block.text = _join_lines([line.text for line in block.lines], layout.words)
        block.rows = [[_cell_text(cell, layout.words) for cell in row] for row in block.rows]
    return _merge_callout_labels(blocks)


def _first_content(page: _Page) -> _Item | None:
    return page.items[0] if page.items else None


def _continues(block: _Block, segment: _Segment, layout: _Layout) -> bool:
    """Whether ``segment`` carries on ``block`` (the same paragraph or list item)."""
    last = block.last
    if segment.marker or abs(segment.size - last.size) > 0.6:
        return False
    if layout.is_heading_size(segment) != layout.is_heading_size(last):
        return False
    heading_like = _looks_like_heading(block, layout)
    same_row = (
        segment.page == last.page
        and segment.x0 >= last.x1 - 1
        and min(segment.bottom, last.bottom) - max(segment.top, last.top)
        >= 0.5 * min(segment.bottom - segment.top, last.bottom - last.top)
    )
    if same_row:
        return segment.x0 - last.x1 <= 4 * last.size  # the rest of the line, past a picture
    same_flow = (
        segment.page == last.page
        and segment.top >= last.top + 0.5 * (last.bottom - last.top)
        and segment.x0 < last.x1 + last.size
        and segment.x1 > last.x0 - last.size
    )
    if same_flow:
        gap = segment.top - last.bottom
        limit = 0.6 * last.size if layout.is_heading_size(last) else layout.paragraph_gap
        if len(block.lines) >= 2 and block.lines[-2].page == last.page:
            # A paragraph keeps its own leading: a wider gap ends it.
            own = last.top - block.lines[-2].bottom
            if own >= 0:
                limit = min(limit, own + 0.3 * last.size)
        if gap > limit:
            return False
        if all(line.bold for line in block.lines) and not segment.bold and len(block.lines) <= 2:
            return False  # a bold heading line, then its text
        if block.kind == "item" and segment.x0 < block.marker_x0 + 0.3 * last.size:
            return False  # back at the list's left edge: the list has ended
        # A line well short of its neighbours ends its paragraph.
        right = max(segment.x1, *(line.x1 for line in block.lines))
        short = last.x1 < right - 0.15 * max(right - last.x0, 1.0)
        # A short last line ending a sentence, then a capital: a new paragraph with no gap.
        return not (short and _SENTENCE_END_RE.search(last.text) and segment.text[:1].isupper())
    # A new column or page: the paragraph carries on only if its sentence does.
    if heading_like or layout.is_heading_size(last) or block.kind not in {"text", "item"}:
        return False
    if segment.bold != last.bold:
        return False
    if _SENTENCE_END_RE.search(last.text) and not segment.text[:1].islower():
        return False
    right = max(line.x1 for line in block.lines)
    full = last.x1 >= right - 0.1 * max(right - block.first.x0, 1.0)
    return segment.text[:1].islower() or full


def _join_lines(lines: Sequence[str], words: _Words | None = None) -> str:
    """Lines of one paragraph as one line, with words split at a line end put back together."""
    words = words or _Words(frozenset(), typeset=False)
    text = ""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        if not text:
            text = line
            continue
        if text.endswith("\u00ad"):  # a soft hyphen is only ever a split word
            text = text[:-1] + line
            continue
        hyphenated = _HYPHENATED_RE.search(text)
        following = _WORD_START_RE.match(line)
        if hyphenated and following:
            head, tail = hyphenated.group(1).lower(), following.group(1).lower()
            # "charg-|ing" was split by the typesetter: the hyphen goes. "high-|voltage",
            # "CHG-|062" or "0-|62" break at a hyphen of the text: it stays.
            kept = not line[:1].islower() or words.keeps_hyphen(head, tail)
            text = text + line if kept else text[:-1] + line
            continue
        text += " " + line
    return text


def _merge_callout_labels(blocks: list[_Block]) -> list[_Block]:
    """Callouts read "Warning: ..." as in HTML ingestion, also when the label stands alone."""
    merged: list[_Block] = []
    index = 0
    while index < len(blocks):
        block = blocks[index]
        following = blocks[index + 1] if index + 1 < len(blocks) else None
        if (
            block.kind == "text"
            and _LABEL_ONLY_RE.match(block.text)
            and following is not None
            and following.kind == "text"
        ):
            label = _LABEL_ONLY_RE.match(block.text).group(1).capitalize()
            following.text = _apply_label(f"{label}: {following.text}", None)
            following.lines = block.lines + following.lines
            following.page = block.page
            merged.append(following)
            index += 2
            continue
        if block.kind == "text":
            block.text = _apply_label(block.text, None)
        merged.append(block)
        index += 1
    return merged


def _looks_like_heading(block: _Block, layout: _Layout) -> bool:
    if block.kind != "text" or not block.lines:
        return False
    words = len(block.text.split()) if block.text else sum(len(s.text.split()) for s in block.lines)
    text = block.text or " ".join(line.text for line in block.lines)
    if layout.is_heading_size(block.first):
        return len(block.lines) <= 3 and words <= 30
    return (
        all(line.bold for line in block.lines)
        and len(block.lines) <= 2
        and words <= 14
        and block.first.size >= layout.body_size - 0.6
        and not re.search(r"[.,;]$", text)
        and not _LABEL_ONLY_RE.match(text)
        and not text.lower().startswith(("note:", "warning:", "caution:", "tip:", "important:"))
    )


def _style(block: _Block) -> tuple[float, bool]:
    return (block.first.size, block.first.bold)


def _style_rank_key(style: tuple[float, bool]) -> tuple[float, int]:
    size, bold = style
    return (-size, 0 if bold else 1)


# --------------------------------------------------------------------------------------------
# Outline and sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    level: int  # 1 = a section, 2 and deeper = headings inside it
    title: str
    page: int
    top: float | None  # distance from the top of the page, when the outline says


@dataclass(frozen=True)
class _Toc:
    entries: list[_Entry]
    root_title: str


def _outline(document: pdfium.PdfDocument, pages: list[_Page]) -> _Toc:
    raw: list[tuple[int, str, int, float | None]] = []
    try:
        for bookmark in document.get_toc(max_depth=8):
            title = normalize_text(" ".join(bookmark.get_title().split()))
            dest = bookmark.get_dest()
            if not title or dest is None:
                continue
            index = dest.get_index()
            if index is None or not 0 <= index < len(pages):
                continue
            raw.append((bookmark.level, title, index + 1, _dest_top(dest, pages[index])))
    except pdfium.PdfiumError:
        return _Toc([], "")
    root_title = ""
    # A lone root whose children start on several pages is the manual's own title: it is
    # looked through to its chapters. (A lone root over a page or two is the one chapter.)
    while raw:
        top_level = min(level for level, *_ in raw)
        roots = [entry for entry in raw if entry[0] == top_level]
        children = [entry for entry in raw if entry[0] == top_level + 1]
        if len(roots) == 1 and len({page for _, _, page, _ in children}) >= 3:
            root_title = root_title or roots[0][1]
            raw = [entry for entry in raw if entry is not roots[0]]
            continue
        break
    raw = _drop_echoes(raw)
    if not raw:
        return _Toc([], root_title)
    top_level = min(level for level, *_ in raw)
    entries = [_Entry(level - top_level + 1, title, page, top) for level, title, page, top in raw]
    return _Toc(entries, root_title)


def _drop_echoes(
    raw: list[tuple[int, str, int, float | None]],
) -> list[tuple[int, str, int, float | None]]:
    """An entry that repeats its parent's title (a merged PDF's part title over the part's
    own outline, whose first entry is the same heading) goes, and its children move up."""
    kept: list[tuple[int, str, int, float | None]] = []
    parents: list[tuple[int, str]] = []  # (level, title) of the open entries, as printed
    lift: list[int] = []  # levels of dropped echoes still open
    for level, title, page, top in raw:
        while parents and parents[-1][0] >= level:
            parents.pop()
        while lift and lift[-1] >= level:
            lift.pop()
        if parents and _normal(parents[-1][1]) == _normal(title):
            parents.append((level, title))
            lift.append(level)
            continue
        parents.append((level, title))
        kept.append((level - len(lift), title, page, top))
    return kept


def _dest_top(dest: pdfium.PdfDest, page: _Page) -> float | None:
    try:
        mode, params = dest.get_view()
    except pdfium.PdfiumError:
        return None
    y: float | None = None
    if mode == pdfium_c.PDFDEST_VIEW_XYZ and len(params) >= 2:
        y = params[1]
    elif mode in (pdfium_c.PDFDEST_VIEW_FITH, pdfium_c.PDFDEST_VIEW_FITBH) and params:
        y = params[0]
    elif mode == pdfium_c.PDFDEST_VIEW_FITR and len(params) >= 4:
        y = params[3]
    if y is None or not math.isfinite(y) or y <= 0 or y > page.height + 1:
        return None
    return page.height - y


def _normal(text: str) -> str:
    """Text to compare a heading with its outline entry: letters and digits only (outlines
    lose the space at a heading's line break: "Model|Year" becomes "ModelYear")."""
    return _ALNUM_RE.sub("", normalize_text(text).lower())


def _sections_from_outline(
    blocks: list[_Block], entries: list[_Entry], layout: _Layout, manual_title: str
) -> list[tuple[str, list[_Block], int]]:
    """Cut the blocks at the outline's top-level entries; deeper entries become headings."""
    matched: set[int] = set()
    starts: list[tuple[int, _Entry]] = []  # (block index, top-level entry)
    inserted: list[tuple[int, _Block]] = []
    for entry in entries:
        index = _match_entry(blocks, entry, matched)
        if index is not None:
            matched.add(index)
            block = blocks[index]
            if block.kind == "item":  # "1. Introduction" is a numbered heading, not a list
                block.text, block.kind, block.marker = _printed_text(block), "text", ""
            block.level = min(entry.level, 3)
        else:
            index = _position_of(blocks, entry)
            if entry.level > 1:
                heading = _Block("heading", entry.page, text=entry.title, last_page=entry.page)
                heading.level = min(entry.level, 3)
                inserted.append((index, heading))
        if entry.level == 1:
            starts.append((index, entry))
    # Insert synthetic headings from the back, shifting section starts that follow them.
    # (Among headings at one place, the outline's order is kept.)
    for _, index, heading in sorted(
        ((order, index, heading) for order, (index, heading) in enumerate(inserted)),
        key=lambda triple: (triple[1], triple[0]),
        reverse=True,
    ):
        blocks.insert(index, heading)
        starts = [(s + 1 if s > index else s, entry) for s, entry in starts]
    _level_unmatched_headings(blocks, layout)
    starts.sort(key=lambda pair: pair[0])
    sections: list[tuple[str, list[_Block], int]] = []
    if starts and starts[0][0] > 0:
        preamble = blocks[: starts[0][0]]
        if _word_count(preamble) >= 5:
            sections.append((manual_title, preamble, preamble[0].page))
    for position, (start, entry) in enumerate(starts):
        end = starts[position + 1][0] if position + 1 < len(starts) else len(blocks)
        body = blocks[start:end]
        title = entry.title
        if body and body[0].level == 1:
            # The title as printed is the "# " line (outlines can lose a space or a dash).
            title = _one_line(body[0].text) or title
            body = body[1:]
        sections.append((title, body, entry.page))
    return sections


def _match_entry(blocks: list[_Block], entry: _Entry, matched: set[int]) -> int | None:
    """The block on the entry's page that prints its title, nearest the entry's height.

    The printed heading may carry a number the outline leaves out ("2.1 Naming" for "Naming")
    or lose a space the outline keeps; a long title may also be cut short on either side.
    """
    wanted = _normal(entry.title)
    bare = _normal(_SECTION_NUMBER_RE.sub("", entry.title)) or wanted
    if not wanted:
        return None
    best: tuple[float, int] | None = None
    for index, block in enumerate(blocks):
        if block.page > entry.page:
            break
        if block.page != entry.page or index in matched or block.kind not in {"text", "item"}:
            continue
        printed = _printed_text(block)
        text = _normal(printed)
        text_bare = _normal(_SECTION_NUMBER_RE.sub("", printed)) or text
        same = text == wanted or text_bare == bare
        if not same and len(bare) >= 12:
            longer, shorter = max(text_bare, bare, key=len), min(text_bare, bare, key=len)
            same = longer.startswith(shorter) and len(shorter) >= 0.6 * len(longer)
        if not same:
            continue
        distance = abs(block.first.top - entry.top) if entry.top is not None else 0.0
        if best is None or distance < best[0]:
            best = (distance, index)
    return None if best is None else best[1]


def _printed_text(block: _Block) -> str:
    """A block's text with its list marker, as printed ("1. Introduction")."""
    return f"{block.marker} {block.text}" if block.kind == "item" else block.text


def _position_of(blocks: list[_Block], entry: _Entry) -> int:
    """Where an entry's heading belongs: before the first block at or below its height."""
    for index, block in enumerate(blocks):
        if block.page > entry.page:
            return index
        # The entry's height marks the top of its heading, or its baseline.
        if block.page == entry.page and (
            entry.top is None or not block.lines or block.first.bottom >= entry.top - 2
        ):
            return index
    return len(blocks)


def _level_unmatched_headings(blocks: list[_Block], layout: _Layout) -> None:
    """Headings found by type only. A type that the outline's entries use takes their level
    (a chapter's type inside a chapter: 2); the other types, largest first, take the levels
    the outline leaves free: 2 and then 3 when it has no second level, else 3."""
    levels: dict[tuple[float, bool], Counter[int]] = defaultdict(Counter)
    for block in blocks:
        if block.level and block.lines:
            levels[_style(block)][block.level] += 1
    free = [3] if any(2 in counts for counts in levels.values()) else [2, 3]
    unknown = sorted(
        {
            _style(block)
            for block in blocks
            if not block.level
            and _looks_like_heading(block, layout)
            and _style(block) not in levels
        },
        key=_style_rank_key,
    )
    for block in blocks:
        if block.level or not _looks_like_heading(block, layout):
            continue
        style = _style(block)
        if style in levels:
            block.level = max(levels[style].most_common(1)[0][0], 2)
        else:
            block.level = free[min(unknown.index(style), len(free) - 1)]


def _sections_from_headings(
    blocks: list[_Block], layout: _Layout, manual_title: str
) -> list[tuple[str, list[_Block], int]]:
    """No outline: a section per heading of the chapter type (see the module docstring)."""
    headings = [block for block in blocks if _looks_like_heading(block, layout)]
    styles = sorted({_style(block) for block in headings}, key=_style_rank_key)
    if not styles:
        return [(manual_title, blocks, blocks[0].page if blocks else 1)]
    counts = Counter(_style(block) for block in headings)
    ranks = styles
    cover_title = None
    if counts[styles[0]] == 1 and len(styles) > 1 and counts[styles[1]] >= 2:
        only = next(block for block in headings if _style(block) == styles[0])
        page_words = sum(len(b.text.split()) for b in blocks if b.page == only.page)
        if page_words < 60:
            cover_title = only
            ranks = styles[1:]
    level_of = {style: min(rank + 1, 3) for rank, style in enumerate(ranks)}
    for block in headings:
        if block is not cover_title:
            block.level = level_of.get(_style(block), 3)
    sections: list[tuple[str, list[_Block], int]] = []
    current_title = manual_title
    current: list[_Block] = []
    start_page = blocks[0].page if blocks else 1
    for block in blocks:
        if block is cover_title:
            continue
        if block.level == 1:
            if _word_count(current) > 0 or current_title != manual_title:
                sections.append((current_title, current, start_page))
            current_title, current, start_page = block.text, [], block.page
            continue
        current.append(block)
    sections.append((current_title, current, start_page))
    return [s for s in sections if s[1] or s[0] != manual_title]


def _word_count(blocks: Iterable[_Block]) -> int:
    return sum(len(block.text.split()) + sum(len(r) for r in block.rows) for block in blocks)


def _manual_title(
    metadata_title: str, root_title: str, blocks: list[_Block], layout: _Layout, name: str
) -> str:
    """The PDF's Title, else its outline's lone root, else its first heading, else the file
    name's stem."""
    title = normalize_text(" ".join(metadata_title.split()))
    if title and not _JUNK_TITLE_RE.match(title):
        return title
    if root_title:
        return root_title
    for block in blocks[:10]:
        if block.kind == "text" and _looks_like_heading(block, layout):
            return normalize_text(_one_line(block.text))
    return PurePath(name).stem or "PDF manual"


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _render_section(title: str, blocks: list[_Block], start_page: int) -> PdfSection | None:
    if _word_count(blocks) == 0 and not any(b.kind == "figure" for b in blocks):
        return None
    title = normalize_text(title) or "Untitled section"
    parts: list[str] = [f"# {title}"]
    figures: dict[str, PdfImage] = {}
    page: int | None = None
    list_lines: list[str] = []
    list_stack: list[tuple[float, str]] = []  # (marker x, indent of its text)
    last_page = start_page

    def flush_list() -> None:
        if list_lines:
            parts.append("\n".join(list_lines))
            list_lines.clear()
            list_stack.clear()

    for block in blocks:
        if block.page != page:
            flush_list()
            parts.append(f"<!-- page {block.page} -->")
            page = block.page
        last_page = max(last_page, block.last_page or block.page)
        if block.kind == "item":
            list_lines.append(_list_line(block, list_stack))
            continue
        flush_list()
        if block.kind == "table":
            parts.append(_pipe_table(block.rows))
        elif block.kind == "figure" and block.figure is not None:
            figure = block.figure
            parts.append(f"<!-- figure {figure.key} -->")
            caption = figure_caption_line(figure.caption)
            if caption:
                parts.append(caption)
            figures.setdefault(
                figure.key, PdfImage(figure.key, figure.data, figure.page, figure.caption)
            )
        elif block.level >= 2 or block.kind == "heading":
            parts.append(f"{'#' * max(block.level, 2)} {_one_line(block.text)}")
        elif block.level == 1:
            parts.append(f"## {_one_line(block.text)}")
        else:
            parts.append(_escape_paragraph(block.text))
    flush_list()
    markdown = normalize_text("\n\n".join(part for part in parts if part.strip())) + "\n"
    first_page = min((b.page for b in blocks), default=start_page)
    return PdfSection(
        title=title,
        markdown=markdown,
        first_page=min(first_page, start_page),
        last_page=last_page,
        figures=tuple(figures.values()),
    )


def _list_line(block: _Block, stack: list[tuple[float, str]]) -> str:
    x = block.marker_x0
    tolerance = 0.5 * block.first.size
    while stack and x < stack[-1][0] - tolerance:
        stack.pop()
    if stack and abs(x - stack[-1][0]) <= tolerance:
        stack.pop()
    indent = stack[-1][1] if stack else ""
    marker = _markdown_marker(block.marker)
    stack.append((x, indent + " " * len(marker)))
    return f"{indent}{marker}{_one_line(block.text)}"


def _markdown_marker(marker: str) -> str:
    if marker[:-1].isdigit():
        return f"{int(marker[:-1])}. "
    if marker == "-":
        return "- "
    return f"- {marker} "  # "a)": markdown has no lettered lists; keep the letter as text


def _pipe_table(rows: list[list[str]]) -> str:
    width = max(len(row) for row in rows)
    lines = [_pipe_row(_pad(rows[0], width)), _pipe_row(["---"] * width)]
    lines.extend(_pipe_row(_pad(row, width)) for row in rows[1:])
    return "\n".join(lines)


def _pipe_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _escape_paragraph(text: str) -> str:
    text = _one_line(text)
    return "\\" + text if _MARKDOWN_LOOKALIKE_RE.match(text) else text
