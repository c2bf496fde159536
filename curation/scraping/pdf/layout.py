"""Reading order (recursive XY-cut into columns and bands) and lines to blocks."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from curation.scraping.markdown import _LABEL_ONLY_RE, _apply_label
from curation.scraping.merging import merge_with_next
from curation.scraping.pdf._base import (
    _HEADING_RATIO,
    _HYPHENATED_RE,
    _MIN_COLUMN_SHARE,
    _MIN_GUTTER,
    _SENTENCE_END_RE,
    _TOKEN_RE,
    _WORD_START_RE,
    _Block,
    _Figure,
    _Item,
    _Page,
    _Segment,
    _Table,
)
from curation.scraping.text import normalize_text

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

    def join(block: _Block, following: _Block) -> _Block | None:
        if not (
            block.kind == "text" and _LABEL_ONLY_RE.match(block.text) and following.kind == "text"
        ):
            return None
        label = _LABEL_ONLY_RE.match(block.text).group(1).capitalize()
        following.text = _apply_label(f"{label}: {following.text}", None)
        following.lines = block.lines + following.lines
        following.page = block.page
        return following

    def keep(block: _Block) -> _Block:
        if block.kind == "text":
            block.text = _apply_label(block.text, None)
        return block

    return merge_with_next(blocks, join, keep)


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


def _cell_text(cell: str, words: _Words) -> str:
    """A pipe-table cell is one line: its lines joined, pipes escaped."""
    if not cell:
        return ""
    return normalize_text(_join_lines(cell.split("\n"), words)).replace("|", "\\|")


def _pad(row: list[str], width: int) -> list[str]:
    return row + [""] * (width - len(row))
