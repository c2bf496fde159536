"""The PDF reader's tunables and the records its steps pass along (no PDF library calls)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from curation.scraping.text import PageRejected


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
