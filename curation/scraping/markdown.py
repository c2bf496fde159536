"""HTML to markdown: drop site chrome, keep headings, paragraphs, lists, tables, code,
callouts, and figures (as markers, when the page's source can read its images)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString

from curation.scraping.figures import (
    _INLINE_SPACE_RE,
    MAX_FIGURES_PER_PAGE,
    ImageReader,
    PageFigure,
    _FigureCollector,
    _is_figure_block,
)
from curation.scraping.merging import merge_with_next
from curation.scraping.text import PageRejected, _normalize_chars, normalize_text

# A page needs at least this many words of body text (title excluded) to be worth keeping;
# fewer means the content was JavaScript-rendered, a redirect stub, or an error page.
MIN_WORDS: Final = 5


@dataclass(frozen=True)
class CleanedPage:
    """A cleaned page: its title, its markdown (starting with ``# {title}``) and word count;
    the figures its markdown refers to, and notes on the images it had to leave out."""

    title: str
    markdown: str
    word_count: int
    figures: tuple[PageFigure, ...] = ()
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# HTML -> markdown
# --------------------------------------------------------------------------------------------

# Removed wherever they appear: site chrome and non-text content.
_DROP_TAGS: Final = frozenset(
    {
        "nav", "header", "footer", "script", "style", "noscript", "form", "iframe", "svg",
        "button", "video", "audio", "canvas", "object", "embed", "template",
        "input", "select", "textarea", "map", "source", "track", "link", "meta", "head",
        "dialog", "math",
    }
)  # fmt: skip
# ARIA landmark roles equivalent to <nav>, <header>, <footer> and a search box.
_DROP_ROLES: Final = frozenset({"navigation", "banner", "contentinfo", "search"})
_BREADCRUMB_MAX_WORDS: Final = 40
# A page's own metadata line ("Updated 14 March 2025 - AST-OM-25-EN rev. C"): a short element
# marked by a class or id segment such as "page-meta", "last-updated", "entry-meta". It is the
# same on every page, chrome like a breadcrumb trail, and quoted as part of an answer it is
# noise ("To stop children from opening the rear doors ... Updated 14 March 2025 - ...").
_PAGE_META_SEGMENTS: Final = frozenset({"meta", "updated", "lastmod", "modified", "byline"})
_PAGE_META_MAX_WORDS: Final = 25
_HIDDEN_STYLE_RE: Final = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)

# Tags that start a new block; everything else is rendered inline.
_BLOCK_TAGS: Final = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "center", "dd", "details", "div",
        "dl", "dt", "fieldset", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "html", "li", "main", "ol", "p", "pre", "section", "summary", "table", "ul",
        "tr", "td", "th", "thead", "tbody", "tfoot", "caption", "br",
    }
)  # fmt: skip
_BLOCK_TAGS_BUT_BR: Final = _BLOCK_TAGS - {"br"}
_HEADING_TAGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
# Only block containers can be callouts; <span class="note-icon"> is not one.
_CALLOUT_TAGS: Final = frozenset({"div", "p", "aside", "section", "blockquote"})
_CALLOUT_LABELS: Final = ("note", "warning", "caution", "tip", "important")
_CLASS_SPLIT_RE: Final = re.compile(r"[-_\s]+")
_LABEL_PREFIX_RE: Final = re.compile(
    r"^(note|warning|caution|tip|important)[ \t]*[:!][ \t]*\n?[ \t]*", re.IGNORECASE
)
_LABEL_ONLY_RE: Final = re.compile(r"^(note|warning|caution|tip|important)[ \t]*[:!]?$", re.I)
_HEADING_MARK_RE: Final = re.compile(r"^#{1,6} ")
_WORD_RE: Final = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_INNER_SPACES_RE: Final = re.compile(r"(?<=\S) {2,}")
_FENCE_RE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Page text that would read as markdown structure, or as a figure or page marker.
_MARKDOWN_LOOKALIKE_RE: Final = re.compile(r"#{1,6}(?:\s|$)|`{3,}|~{3,}|<!--")
_MARKER_LINE_RE: Final = re.compile(r"^<!-- (?:figure|page) [^\n]*-->$", re.MULTILINE)


def html_to_markdown(
    html: str,
    *,
    base_url: str | None = None,
    load_image: ImageReader | None = None,
    max_figures: int = MAX_FIGURES_PER_PAGE,
) -> CleanedPage:
    """Convert a page's HTML to clean markdown (see the module docstring for what is kept).

    Only ``<main>`` / ``[role=main]`` / a single ``<article>`` is converted when the page has
    one, because everything around it is chrome; otherwise the ``<body>`` minus the dropped
    parts. The title is the content's first ``<h1>`` (which becomes the markdown's ``# title``
    line, so it appears once), else the ``<title>``, else empty; with no title at all the
    markdown has no title line.

    ``base_url`` only labels rejection messages: links are reduced to their text, so no URL
    is ever resolved.

    With ``load_image`` (the page's source reads its images), each ``<img>`` of the content
    is read: a picture becomes a marker line ``<!-- figure KEY -->`` at its place, followed by
    :func:`figure_caption_line` of its ``<figcaption>`` (else its alt text), and is returned in
    ``figures``. Icons (under 32 pixels a side) are left out silently; an image that cannot be
    read, or is not PNG, JPEG, GIF, WebP or BMP, is left out with a note (its figcaption stays
    as text). Without ``load_image`` images are dropped, as everywhere before figures.

    Raises:
        PageRejected: ``"empty after cleaning"`` when fewer than ``MIN_WORDS`` words of body
            text remain.
    """
    soup = BeautifulSoup(html, "html.parser")
    head_title = soup.find("title")
    fallback_title = head_title.get_text(" ") if isinstance(head_title, Tag) else ""

    renderer = _Renderer()
    root = _content_root(soup)
    # Decide what is chrome on the intact tree, before the title <h1> is taken out of it.
    chrome = [tag for tag in root.find_all(True) if _is_dropped(tag)]
    title_h1 = _title_heading(root)
    if title_h1 is not None:
        # Detach it before dropping chrome: it may sit in the article's own <header>. It
        # becomes the "# title" line, so it must not be rendered a second time.
        title_h1.extract()
    for tag in chrome:
        if not tag.decomposed:
            tag.decompose()
    collector = _FigureCollector(soup, load_image, max_figures)
    if load_image is not None:
        collector.collect(root, renderer)
    renderer.figures = collector
    title = ""
    if title_h1 is not None:
        title = normalize_text(_INLINE_SPACE_RE.sub(" ", renderer.inline(title_h1)))
    if not title:
        title = normalize_text(_INLINE_SPACE_RE.sub(" ", fallback_title))

    body = _tidy_markdown("\n\n".join(renderer.blocks(root)))
    body_words = _word_count(body)
    if body_words < MIN_WORDS:
        where = f" ({base_url})" if base_url else ""
        raise PageRejected(f"empty after cleaning: {body_words} word(s) of text left{where}")

    markdown = f"# {title}\n\n{body}\n" if title else f"{body}\n"
    return CleanedPage(
        title=title,
        markdown=markdown,
        word_count=_word_count(markdown),
        figures=tuple(collector.emitted.values()),
        notes=tuple(collector.notes),
    )


def _word_count(markdown: str) -> int:
    """Words of text: figure and page markers are not words of the page."""
    return len(_WORD_RE.findall(_MARKER_LINE_RE.sub("", markdown)))


def _content_root(soup: BeautifulSoup) -> Tag:
    main = soup.find("main") or soup.find(attrs={"role": "main"})
    if isinstance(main, Tag):
        return main
    # Several <article>s means a listing page; converting only the first would lose text.
    articles = soup.find_all("article")
    if len(articles) == 1:
        return articles[0]
    body = soup.find("body")
    return body if isinstance(body, Tag) else soup


def _title_heading(root: Tag) -> Tag | None:
    """The first <h1> that belongs to the content, not to chrome around it."""
    root_is_page = root.name in {"body", "[document]"}
    for h1 in root.find_all("h1"):
        for parent in [h1, *h1.parents]:
            if parent is root:
                return h1
            if _is_dropped(parent) and not (parent.name == "header" and not root_is_page):
                # A <header> inside <main>/<article> is the article's own header (holding its
                # title); only a page-level <header> is site chrome.
                break
    return None


def _is_dropped(tag: Tag) -> bool:
    if tag.name in _DROP_TAGS:
        return True
    attrs = tag.attrs
    if not attrs:
        return False
    if "hidden" in attrs or str(attrs.get("aria-hidden", "")).lower() == "true":
        return True
    if str(attrs.get("role", "")).lower() in _DROP_ROLES:
        return True
    if _HIDDEN_STYLE_RE.search(str(attrs.get("style", ""))):
        return True
    marker = " ".join([*_classes(tag), str(attrs.get("id", "")), str(attrs.get("aria-label", ""))])
    if "breadcrumb" in marker.lower():
        return _is_short(tag, _BREADCRUMB_MAX_WORDS)
    if _PAGE_META_SEGMENTS & set(_CLASS_SPLIT_RE.split(marker.lower())):
        return _is_short(tag, _PAGE_META_MAX_WORDS)
    return False


def _is_short(tag: Tag, max_words: int) -> bool:
    # A breadcrumb trail is a few short links, a date or revision stamp a few words. Such a
    # class on an element holding headings or a lot of text marks a page wrapper
    # (class="page has-breadcrumbs") or content (a box of a page's key facts): keep it.
    if tag.find(_HEADING_TAGS) is not None:
        return False
    return len(tag.get_text(" ").split()) <= max_words


def _classes(tag: Tag) -> list[str]:
    value = tag.get("class") or []
    return value.split() if isinstance(value, str) else list(value)


def _is_text(node: object) -> bool:
    # Comment, CData, Doctype ... are PreformattedString subclasses: markup, not page text.
    return isinstance(node, NavigableString) and not isinstance(node, PreformattedString)


def _callout_label(tag: Tag) -> str | None:
    if tag.name not in _CALLOUT_TAGS:
        return None
    for class_name in _classes(tag):
        # Whole class segments only, so "tooltip" or "footnote" do not count.
        for segment in _CLASS_SPLIT_RE.split(class_name.lower()):
            if segment in _CALLOUT_LABELS:
                return segment.capitalize()
    return None


def _apply_label(text: str, class_label: str | None) -> str:
    """Give a callout paragraph exactly one canonical label ("Warning: ...")."""
    match = _LABEL_PREFIX_RE.match(text)
    if match:  # the text's own label wins: it is what the author wrote
        return f"{match.group(1).capitalize()}: {text[match.end() :].lstrip()}".rstrip()
    if class_label:
        return f"{class_label}: {text}"
    return text


class _Renderer:
    """Walks the cleaned tree and renders markdown blocks (one string per block).

    A figure (a kept ``<img>``) is a block of its own: its marker must be a line of its own,
    so a figure met inside a list, a table or a callout is written after it instead."""

    def __init__(self) -> None:
        self.figures: _FigureCollector | None = None
        self._hoisted: list[str] = []

    def blocks(self, node: Tag) -> list[str]:
        """Render a container's children: runs of inline content become paragraphs."""
        return _merge_label_only_paragraphs(self._flow(node))

    def _flow(self, node: Tag, nested_indent: str | None = None) -> list[str]:
        """A container's children as blocks, runs of inline content as paragraphs. With
        ``nested_indent`` the container is a list item: lists inside it nest at that indent,
        and its paragraphs are list text, never callouts."""
        blocks: list[str] = []
        inline: list[str] = []

        def flush() -> None:
            paragraph = _tidy_paragraph("".join(inline))
            inline.clear()
            if paragraph:
                blocks.append(
                    paragraph if nested_indent is not None else _apply_label(paragraph, None)
                )

        for child in node.children:
            if isinstance(child, Tag) and nested_indent is not None and child.name in {"ul", "ol"}:
                flush()
                nested = self._list(child, nested_indent)
                if nested:
                    blocks.append(nested)
            elif isinstance(child, Tag) and child.name != "br" and self._is_blockish(child):
                flush()
                blocks.extend(self.block(child))
            elif isinstance(child, Tag):
                inline.append(self.inline(child))
            elif _is_text(child):
                inline.append(_INLINE_SPACE_RE.sub(" ", str(child)))
        flush()
        return blocks

    def block(self, tag: Tag) -> list[str]:
        name = tag.name
        if self.figures is not None and self.figures.is_figure(tag):
            return [self.figures.block(tag)]
        if name in {"ul", "ol", "table"}:
            # Figures inside come out of the list or table and follow it.
            mark = len(self._hoisted)
            rendered = self._block(tag)
            hoisted = self._hoisted[mark:]
            del self._hoisted[mark:]
            return [*rendered, *hoisted]
        return self._block(tag)

    def _block(self, tag: Tag) -> list[str]:
        name = tag.name
        if name in _HEADING_TAGS:
            text = _INLINE_SPACE_RE.sub(" ", self.inline(tag)).strip()
            # The page title is the only "# " line; other <h1>s are demoted to sections.
            level = max(int(name[1]), 2)
            return [f"{'#' * level} {text}"] if text else []
        if name in {"ul", "ol"}:
            listing = self._list(tag)
            return [listing] if listing else []
        if name == "table":
            return self._table(tag)
        if name == "pre":
            return self._pre(tag)
        if name == "hr":
            return []  # "---" under a paragraph would turn it into a setext heading
        label = _callout_label(tag)
        inner = self.blocks(tag)
        if not label or not inner:
            return inner
        # A callout is one paragraph: its figures follow it.
        figures = [block for block in inner if _is_figure_block(block)]
        inner = [block for block in inner if not _is_figure_block(block)]
        if not inner:
            return figures
        # A callout is one paragraph: headings inside it are plain text, and a list inside it
        # stays on its own lines but without blank lines.
        inner = [_HEADING_MARK_RE.sub("", block) for block in inner]
        title = _LABEL_ONLY_RE.match(inner[0])
        if title and len(inner) > 1:  # a title block such as Sphinx's "admonition-title"
            label = title.group(1).capitalize()
            inner = inner[1:]
        return [_apply_label("\n".join(inner), label), *figures]

    def inline(self, tag: Tag) -> str:
        if tag.name == "br":
            return "\n"
        if tag.name == "code":
            code = _INLINE_SPACE_RE.sub(" ", tag.get_text()).strip()
            if not code:
                return ""
            fence = "``" if "`" in code else "`"
            return f"{fence}{code}{fence}"
        parts: list[str] = []
        for child in tag.children:
            if isinstance(child, Tag):
                parts.append(self.inline(child))
            elif _is_text(child):
                parts.append(_INLINE_SPACE_RE.sub(" ", str(child)))
        return "".join(parts)

    def _is_blockish(self, tag: Tag) -> bool:
        # An inline tag wrapping blocks (<a><div>...</div></a>) must be rendered as blocks; so
        # must a figure, and a tag holding one.
        return (
            tag.name in _BLOCK_TAGS
            or _callout_label(tag) is not None
            or tag.find(_BLOCK_TAGS_BUT_BR) is not None
            or (
                self.figures is not None
                and (self.figures.is_figure(tag) or self.figures.holds_figure(tag))
            )
        )

    def _list(self, tag: Tag, indent: str = "") -> str:
        ordered = tag.name == "ol"
        number = _int_attr(tag, "start", 1, minimum=0)
        lines: list[str] = []
        for item in tag.find_all("li", recursive=False):
            marker = f"{number}. " if ordered else "- "
            number += 1
            body: list[str] = []
            for block in self._flow(item, nested_indent=indent + " " * len(marker)):
                if _is_figure_block(block):
                    self._hoisted.append(block)
                    continue
                body.extend(block.split("\n"))
            if not body:
                continue
            first, rest = body[0], body[1:]
            nested_indent = indent + " " * len(marker)
            lines.append(f"{indent}{marker}{first.lstrip()}")
            # Nested lists arrive already indented; other continuation lines get indented here.
            for line in rest:
                lines.append(line if line.startswith(nested_indent) else nested_indent + line)
        return "\n".join(lines)

    def _table(self, table: Tag) -> list[str]:
        blocks: list[str] = []
        caption = table.find("caption")
        if isinstance(caption, Tag) and caption.find_parent("table") is table:
            text = _tidy_paragraph(self.inline(caption))
            if text:
                blocks.append(text)
        grid = self._grid(table)
        if not grid:
            return blocks
        width = max(len(row) for row in grid)
        rows = [row + [""] * (width - len(row)) for row in grid]
        # Without <thead> the first row is still the header: pipe tables require one.
        lines = [_pipe_row(rows[0]), _pipe_row(["---"] * width)]
        lines.extend(_pipe_row(row) for row in rows[1:])
        blocks.append("\n".join(lines))
        return blocks

    def _grid(self, table: Tag) -> list[list[str]]:
        """Rows of cell texts, with colspan/rowspan expanded so columns stay aligned."""
        grid: list[list[str]] = []
        carried: dict[int, tuple[str, int]] = {}  # column -> (text, rows still spanned)
        for tr in table.find_all("tr"):
            if tr.find_parent("table") is not table:
                continue  # a row of a nested table
            row: list[str] = []
            cells = [c for c in tr.children if isinstance(c, Tag) and c.name in {"td", "th"}]
            for cell in cells:
                while len(row) in carried:
                    row.append(self._take_carried(carried, len(row)))
                text = self._cell_text(cell)
                rowspan = _int_attr(cell, "rowspan", 1)
                for _ in range(_int_attr(cell, "colspan", 1)):
                    if rowspan > 1:
                        carried[len(row)] = (text, rowspan - 1)
                    row.append(text)
            while len(row) in carried:
                row.append(self._take_carried(carried, len(row)))
            if any(cell for cell in row):
                grid.append(row)
        return grid

    @staticmethod
    def _take_carried(carried: dict[int, tuple[str, int]], column: int) -> str:
        text, left = carried.pop(column)
        if left > 1:
            carried[column] = (text, left - 1)
        return text

    def _cell_text(self, cell: Tag) -> str:
        # A pipe-table cell is one line: inner newlines collapse, pipes are escaped.
        blocks = self.blocks(cell)
        self._hoisted.extend(block for block in blocks if _is_figure_block(block))
        text = " ".join(block for block in blocks if not _is_figure_block(block))
        text = _INLINE_SPACE_RE.sub(" ", text).strip()
        return text.replace("|", "\\|")

    def _pre(self, tag: Tag) -> list[str]:
        code = tag.get_text()
        # HTML ignores one newline right after <pre>; trailing blank lines are layout noise.
        if code.startswith("\n"):
            code = code[1:]
        code = "\n".join(line.rstrip() for line in code.rstrip().split("\n"))
        if not code.strip():
            return []
        fence = "```"
        while fence in code:
            fence += "`"
        language = ""
        code_tag = tag.find("code")
        for class_name in _classes(code_tag) if isinstance(code_tag, Tag) else []:
            if class_name.startswith("language-"):
                language = class_name.removeprefix("language-")
                break
        return [f"{fence}{language}\n{code}\n{fence}"]


def _int_attr(tag: Tag, name: str, default: int, *, minimum: int = 1) -> int:
    try:
        return max(minimum, int(str(tag.get(name, default)).strip()))
    except ValueError:
        return default


def _pipe_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _tidy_paragraph(text: str) -> str:
    """Strip each line of a paragraph and collapse blank-line runs (<br><br><br>).

    Text that would read as markdown structure ("# of cycles", a line of backticks) is
    escaped, so the chunker never mistakes page text for a heading or a code fence.
    """
    lines = [_INLINE_SPACE_RE.sub(" ", line).strip() for line in text.split("\n")]
    kept: list[str] = []
    for line in lines:
        if line or (kept and kept[-1]):
            kept.append("\\" + line if _MARKDOWN_LOOKALIKE_RE.match(line) else line)
    return "\n".join(kept).strip("\n")


def _merge_label_only_paragraphs(blocks: list[str]) -> list[str]:
    """Join a lone "Warning:" paragraph with the paragraph it labels."""

    def join(block: str, following: str) -> str | None:
        if (
            _LABEL_ONLY_RE.match(block)
            and block.endswith(":")
            and not following.startswith(("#", "|", "```", "- ", "<!-- "))
        ):
            return _apply_label(f"{block} {following}", None)
        return None

    return merge_with_next(blocks, join)


def _tidy_markdown(markdown: str) -> str:
    """Final pass: ASCII-normalise characters and enforce the whitespace contract.

    Character normalisation happens here, on whole lines, so that patterns spanning inline
    tags (``20 <b>°C</b>``) still match. Code blocks keep their inner spacing.
    """
    lines: list[str] = []
    fence: str | None = None
    for line in _normalize_chars(markdown).split("\n"):
        line = line.rstrip()
        match = _FENCE_RE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1).startswith(fence):
            fence = None
        elif fence is None:
            if not line and lines and not lines[-1]:
                continue  # blocks are separated by exactly one blank line
            # Leading indentation is list nesting; collapse only the spaces after text.
            line = _INNER_SPACES_RE.sub(" ", line)
        lines.append(line)
    return "\n".join(lines).strip("\n")
