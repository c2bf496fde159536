"""The outline and the sections it cuts, and the sections' markdown."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePath

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from curation.scraping.figures import figure_caption_line
from curation.scraping.pdf._base import (
    _ALNUM_RE,
    _JUNK_TITLE_RE,
    _MARKDOWN_LOOKALIKE_RE,
    _SECTION_NUMBER_RE,
    PdfImage,
    PdfSection,
    _Block,
    _Page,
)
from curation.scraping.pdf.layout import (
    _Layout,
    _looks_like_heading,
    _pad,
    _style,
    _style_rank_key,
)
from curation.scraping.text import normalize_text

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
