"""One PDF page: characters to segments, ruled tables, bullets; running headers and footers."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

import pdfplumber

from curation.scraping.merging import merge_with_next
from curation.scraping.pdf._base import (
    _BOLD_RE,
    _BULLET_MAX_SIDE,
    _BULLET_ONLY_RE,
    _BULLET_RE,
    _CID_RE,
    _DIGITS_RE,
    _ITALIC_RE,
    _MARGIN_ZONE,
    _NUMBER_ONLY_RE,
    _NUMBER_RE,
    _PAGE_NUMBER_RE,
    _RECURRING_PAGES,
    _SEGMENT_GAP,
    _TOC_LINE_RE,
    _WORD_GAP,
    _Figure,
    _Page,
    _Segment,
    _Table,
)
from curation.scraping.pdf.layout import (
    _pad,
)

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

    def join(segment: _Segment, following: _Segment) -> _Segment | None:
        lone = _BULLET_ONLY_RE.match(segment.text) or _NUMBER_ONLY_RE.match(segment.text)
        if not (
            lone
            and not following.marker
            and following.x0 - segment.x1 <= 4 * max(segment.size, 1.0)
        ):
            return None
        is_bullet = _BULLET_ONLY_RE.match(segment.text) is not None
        following.marker = "-" if is_bullet else segment.text
        following.marker_x0 = segment.x0
        return following

    return merge_with_next(segments, join)


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
