"""Split a cleaned manual page (markdown) into heading-aware chunks that fit a token budget.

Each chunk is what gets embedded and retrieved, so it must (a) fit the embedding model's input
(``max_tokens``), (b) say where it comes from, and (c) hold text about one topic. Hence:

* Chunks follow the page's headings. ``#`` and ``##`` headings are hard boundaries: a chunk
  never spans two ``##`` sections. A ``###`` (or deeper) subsection stays inside its parent's
  chunk when the whole parent fits the budget, and becomes its own chunk(s) otherwise.
* Every chunk's text starts with its heading path (``"Title > Section > Subsection"``) and a
  blank line. A paragraph such as "Press it for 2 seconds" is useless for retrieval unless the
  embedding knows it is about the charge port.
* A section too long for one chunk is split on paragraph boundaries, then lines, sentences,
  words and (for a pathological run of symbols) characters, so no chunk ever exceeds the
  budget. Lists, tables and code blocks stay whole while they fit; a table split by rows repeats
  its header row. Consecutive pieces overlap by up to ``overlap_tokens`` of repeated trailing
  paragraphs or sentences (never sentences cut from a step or a bullet), so an answer that
  straddles a split is still found.
* No text is lost: every non-heading line of the page appears in at least one chunk.

Plain Python (no Django import), deterministic, and tokenizer-agnostic: token counts always come
from ``count_tokens`` applied to the exact chunk text, so the budget holds for any counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from manualqa.lib.embeddings import word_token_count

__all__ = ["FIGURE_MARKER", "PAGE_MARKER", "Chunk", "chunk_markdown", "word_token_count"]

HEADING_SEPARATOR: Final = " > "


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document.

    ``text`` is stored and embedded as is: ``"{heading_path}\\n\\n{body}"``. ``pages`` are
    the PDF pages the passage spans and ``figures`` the keys of the figures it holds, read from
    the document's markers (see :data:`PAGE_MARKER` and :data:`FIGURE_MARKER`); both are empty
    for a document without markers.
    """

    position: int
    heading_path: str
    text: str
    token_count: int
    pages: tuple[int, ...] = ()
    figures: tuple[str, ...] = ()


#: A line ``<!-- page 12 -->`` in a document's markdown: what follows is on PDF page 12. The
#: markers stay in the stored markdown (pages render HTML comments as nothing) and are taken
#: out of the chunks' text.
PAGE_MARKER: Final = re.compile(r"^<!-- page (\d+) -->[ \t]*$", re.MULTILINE)
#: A line ``<!-- figure KEY -->``: the document's figure KEY (a SHA-256 in hex) stands here.
FIGURE_MARKER: Final = re.compile(r"^<!-- figure ([0-9a-f]{8,64}) -->[ \t]*$", re.MULTILINE)
_BLANK_RUNS: Final = re.compile(r"\n{3,}")


# Words, and each punctuation mark on its own: roughly how subword tokenizers split text.
def chunk_markdown(
    markdown: str,
    *,
    title: str,
    max_tokens: int = 256,
    overlap_tokens: int = 32,
    count_tokens: Callable[[str], int] = word_token_count,
) -> list[Chunk]:
    """Chunk one document's markdown; see the module docstring for the rules.

    Args:
        markdown: the page, usually starting with ``# {title}``. That line is not repeated in
            the chunks; the title is the first part of every heading path instead.
        title: the document title (first element of every heading path).
        max_tokens: hard limit on ``count_tokens(chunk.text)``, heading path included.
        overlap_tokens: at most this many tokens of the previous piece are repeated at the start
            of the next piece of the same section; 0 disables overlap.
        count_tokens: the embedding model's token counter (default: :func:`word_token_count`).

    Returns:
        Chunks in document order, ``position`` counting from 0.

    Raises:
        ValueError: for a budget that cannot work (``max_tokens < 1``, an overlap that is
            negative or not smaller than ``max_tokens``, or a single character over budget),
            or a ``count_tokens`` that pads or truncates (see :func:`_check_counter`).
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens must be in [0, max_tokens), got {overlap_tokens}")
    _check_counter(count_tokens, max_tokens)
    title = title.strip()
    root = _parse_sections(markdown, title)
    chunker = _Chunker(max_tokens, overlap_tokens, count_tokens)
    chunker.emit_section(root, [title] if title else [])
    if "<!-- " not in markdown:
        return [
            Chunk(position=index, heading_path=path, text=text, token_count=count_tokens(text))
            for index, (path, text) in enumerate(chunker.chunks)
        ]
    return _take_markers(chunker.chunks, count_tokens)


def _take_markers(pieces: list[tuple[str, str]], count_tokens: Callable[[str], int]) -> list[Chunk]:
    """Chunks with the page and figure markers taken out of their text and kept as ``pages``
    and ``figures``. A passage without a page marker of its own is on the page the last marker
    before it opened; one left with nothing but its heading path once the markers are out is
    dropped (its markers carry on to the next)."""
    chunks: list[Chunk] = []
    page: int | None = None
    carried: tuple[str, ...] = ()  # figures of a dropped passage, for the next one
    for path, text in pieces:
        starts_on = page
        found_pages = [int(number) for number in PAGE_MARKER.findall(text)]
        figures = tuple(dict.fromkeys(carried + tuple(FIGURE_MARKER.findall(text))))
        cleaned = FIGURE_MARKER.sub("", PAGE_MARKER.sub("", text))
        cleaned = _BLANK_RUNS.sub("\n\n", cleaned).strip()
        if found_pages:
            page = found_pages[-1]
        heading, _, body = cleaned.partition("\n\n")
        if not body.strip() and heading.strip() == path.strip():
            carried = figures
            continue
        carried = ()
        # The page it starts on, unless the passage opens with a page marker of its own.
        first_line = text.split("\n\n", 1)[-1].lstrip()
        pages = [] if starts_on is None or PAGE_MARKER.match(first_line) else [starts_on]
        pages = sorted(set(pages + found_pages))
        chunks.append(
            Chunk(
                position=len(chunks),
                heading_path=path,
                text=cleaned,
                token_count=count_tokens(cleaned),
                pages=tuple(pages),
                figures=figures,
            )
        )
    return chunks


def _check_counter(count_tokens: Callable[[str], int], max_tokens: int) -> None:
    """Refuse a token counter that pads or truncates.

    A tokenizer loaded from a ``tokenizer.json`` with padding/truncation enabled counts every
    text as (at most) its fixed length, so every text would "fit" and chunks would silently
    grow past what the embedding model reads.
    """
    empty = count_tokens("")
    if empty != 0:
        raise ValueError(f"count_tokens('') returned {empty}, not 0: is the tokenizer padding?")
    words = max_tokens + 1
    probe = count_tokens("word " * words)
    if probe <= max_tokens:
        raise ValueError(
            f"count_tokens() gave {probe} tokens for {words} words, within max_tokens="
            f"{max_tokens}: is the tokenizer truncating?"
        )


# --------------------------------------------------------------------------------------------
# Parsing: markdown -> tree of sections
# --------------------------------------------------------------------------------------------

# ATX headings only (setext "Title\n=====" headings do not occur in the cleaned pages).
_HEADING_RE: Final = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")
_FENCE_OPEN_RE: Final = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TABLE_SEPARATOR_RE: Final = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")


@dataclass
class _Section:
    """A heading and what follows it up to the next heading of the same or higher level."""

    level: int  # 0 for the document itself (text before any heading)
    heading: str
    heading_line: str
    lines: list[str] = field(default_factory=list)
    children: list[_Section] = field(default_factory=list)

    def has_text(self) -> bool:
        return any(line.strip() for line in self.lines) or any(
            child.has_text() for child in self.children
        )


class _FenceTracker:
    """Tracks fenced code blocks so that '#' lines inside them are not taken for headings."""

    def __init__(self) -> None:
        self.fence: str | None = None

    def feed(self, line: str) -> bool:
        """Consume a line; True if it is part of a fenced code block (fence lines included)."""
        if self.fence is not None:
            stripped = line.strip()
            if stripped.startswith(self.fence) and not stripped.strip(self.fence[0]):
                self.fence = None
            return True
        match = _FENCE_OPEN_RE.match(line)
        # A backtick fence's info string cannot contain backticks (CommonMark).
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            self.fence = match.group(1)
            return True
        return False


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _parse_sections(markdown: str, title: str) -> _Section:
    root = _Section(level=0, heading=title, heading_line="")
    stack = [root]
    fences = _FenceTracker()
    seen_heading = False
    for line in markdown.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.rstrip()
        match = None if fences.feed(line) else _HEADING_RE.match(line)
        if match is None:
            stack[-1].lines.append(line)
            continue
        level, text = len(match.group(1)), (match.group(2) or "").strip()
        if level == 1 and not seen_heading and _key(text) == _key(title):
            seen_heading = True  # the title line itself: it heads every path already
            continue
        seen_heading = True
        while stack[-1].level >= level:
            stack.pop()
        section = _Section(level=level, heading=text, heading_line=line.strip())
        stack[-1].children.append(section)
        stack.append(section)
    return root


def _blocks(lines: list[str]) -> list[str]:
    """Paragraph-level blocks: split at blank lines, except inside fenced code."""
    blocks: list[str] = []
    current: list[str] = []
    fences = _FenceTracker()
    for line in lines:
        if not fences.feed(line) and not line.strip():
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
    if current:
        blocks.append("\n".join(current))
    return blocks


# --------------------------------------------------------------------------------------------
# Splitting and packing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """A piece of text that is never split further while packing."""

    text: str
    sep: str  # what joins it to the unit before it: "\n\n" block, "\n" line, " " sentence/word
    overlappable: bool = True  # tables and code are not repeated as overlap (headers are)


def _render(units: list[_Unit]) -> str:
    if not units:
        return ""
    return units[0].text + "".join(unit.sep + unit.text for unit in units[1:])


# A step ("4. ") or a bullet ("- ") of a markdown list.
_LIST_ITEM_RE: Final = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END_RE: Final = re.compile(r"[.!?][\"')\]]*[ \t]+(?=\S)")


def _split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END_RE.finditer(text):
        end = match.start() + len(match.group(0).rstrip())
        sentences.append(text[start:end])
        start = match.end()
    sentences.append(text[start:])
    return [sentence for sentence in sentences if sentence.strip()]


def _split_words(text: str) -> list[str]:
    words = text.split()
    if words:
        # Keep a line's indentation (list nesting) on its first word.
        words[0] = text[: len(text) - len(text.lstrip())] + words[0]
    return words


def _segments(block: str) -> list[tuple[str, list[str]]]:
    """A block's lines grouped as ("code", fence..fence), ("table", rows) or ("line", [line])."""
    lines = block.split("\n")
    segments: list[tuple[str, list[str]]] = []
    index = 0
    while index < len(lines):
        fences = _FenceTracker()
        if fences.feed(lines[index]):
            end = index + 1
            while end < len(lines) and fences.fence is not None:
                fences.feed(lines[end])
                end += 1
            segments.append(("code", lines[index:end]))
        elif lines[index].lstrip().startswith("|"):
            end = index + 1
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            segments.append(("table", lines[index:end]))
        else:
            end = index + 1
            segments.append(("line", lines[index:end]))
        index = end
    return segments


class _Chunker:
    """Walks the section tree and collects (heading_path, text) pairs within the budget."""

    def __init__(
        self, max_tokens: int, overlap_tokens: int, count_tokens: Callable[[str], int]
    ) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.count = count_tokens
        self.prefix = ""
        self.chunks: list[tuple[str, str]] = []  # (heading_path, text)

    # -- sections ------------------------------------------------------------------------------

    def emit_section(self, section: _Section, path: list[str]) -> None:
        """Emit the chunks of one section and, recursively, of its subsections."""
        self._use_path(path)
        # Below "##", a subsection stays inside its parent's chunk when everything fits.
        if section.level >= 2:
            if not section.has_text():
                return
            whole = self._render_tree(section)
            if self._fits(whole):
                self._add(path, whole)
                return
        blocks = _blocks(section.lines)
        if blocks:
            for body in self._split(blocks):
                self._add(path, body)
        for child in section.children:
            self.emit_section(child, [*path, child.heading] if child.heading else path)

    def _render_tree(self, section: _Section) -> str:
        parts = ["\n\n".join(_blocks(section.lines))]
        for child in section.children:
            if child.has_text():
                parts.extend([child.heading_line, self._render_tree(child)])
        return "\n\n".join(part for part in parts if part)

    def _use_path(self, path: list[str]) -> None:
        heading_path = HEADING_SEPARATOR.join(path)
        self.prefix = f"{heading_path}\n\n" if heading_path else ""
        # A heading path so long that it leaves less than half the budget for text is cut
        # (only in the chunk text; Chunk.heading_path stays whole): text matters more.
        if self.prefix and self.count(self.prefix) > self.max_tokens // 2:
            words = heading_path.split()
            low, high = 0, len(words)  # largest word count whose prefix fits half the budget
            while low < high:
                middle = (low + high + 1) // 2
                if self.count(" ".join(words[:middle]) + "\n\n") <= self.max_tokens // 2:
                    low = middle
                else:
                    high = middle - 1
            self.prefix = " ".join(words[:low]) + "\n\n" if low else ""

    def _add(self, path: list[str], body: str) -> None:
        self.chunks.append((HEADING_SEPARATOR.join(path), self.prefix + body))

    def _fits(self, body: str) -> bool:
        return self.count(self.prefix + body) <= self.max_tokens

    # -- splitting -----------------------------------------------------------------------------

    def _split(self, blocks: list[str]) -> list[str]:
        """Bodies of the pieces of one section's text, each fitting the budget with prefix."""
        whole = "\n\n".join(blocks)
        if self._fits(whole):
            return [whole]
        units = [unit for block in blocks for unit in self._block_units(block, "\n\n")]
        return self._pack(units)

    def _block_units(self, block: str, sep: str) -> list[_Unit]:
        if self._fits(block):
            plain = all(kind == "line" for kind, _ in _segments(block))
            return [_Unit(block, sep, overlappable=plain)]
        units: list[_Unit] = []
        for index, (kind, lines) in enumerate(_segments(block)):
            line_sep = sep if index == 0 else "\n"
            if kind == "code":
                units.extend(self._code_units(lines, line_sep))
            elif kind == "table":
                units.extend(self._table_units(lines, line_sep))
            else:
                units.extend(self._text_units(lines[0], line_sep))
        return units

    def _text_units(self, text: str, sep: str) -> list[_Unit]:
        """A line as one unit, else as sentences, else words, else characters."""
        if self._fits(text):
            return [_Unit(text, sep)]
        sentences = _split_sentences(text)
        if len(sentences) > 1:
            units: list[_Unit] = []
            for index, sentence in enumerate(sentences):
                units.extend(self._text_units(sentence, sep if index == 0 else " "))
            return units
        words = _split_words(text)
        if len(words) > 1:
            units = []
            for index, word in enumerate(words):
                units.extend(self._text_units(word, sep if index == 0 else " "))
            return units
        return self._char_units(text, sep)

    def _char_units(self, text: str, sep: str) -> list[_Unit]:
        # Only reached by a "word" over budget on its own, e.g. a long run of symbols.
        units: list[_Unit] = []
        while text:
            low, high = 0, len(text)  # longest prefix that fits
            while low < high:
                middle = (low + high + 1) // 2
                if self._fits(text[:middle]):
                    low = middle
                else:
                    high = middle - 1
            if low == 0:
                raise ValueError(
                    f"max_tokens={self.max_tokens} cannot hold a single character of text"
                )
            units.append(_Unit(text[:low], sep if not units else ""))
            text = text[low:]
        return units

    def _table_units(self, lines: list[str], sep: str) -> list[_Unit]:
        """Row groups that fit, each repeating the header row and its separator."""
        whole = "\n".join(lines)
        if self._fits(whole):
            return [_Unit(whole, sep, overlappable=False)]
        has_header = len(lines) >= 2 and bool(_TABLE_SEPARATOR_RE.match(lines[1]))
        header, rows = (lines[:2], lines[2:]) if has_header else ([], lines)
        units: list[_Unit] = []
        group: list[str] = []
        header_shown = False

        def next_sep() -> str:
            return sep if not units else "\n"

        def flush() -> None:
            nonlocal header_shown
            if group:
                units.append(_Unit("\n".join(header + group), next_sep(), overlappable=False))
                header_shown = True
                group.clear()

        for row in rows:
            if self._fits("\n".join(header + group + [row])):
                group.append(row)
                continue
            flush()
            if self._fits("\n".join(header + [row])):
                group.append(row)
                continue
            # A row too long even alone: it continues as plain text (nothing may be lost).
            if not header_shown:
                for line in header:
                    units.extend(self._text_units(line, next_sep()))
                header_shown = True
            units.extend(self._text_units(row, next_sep()))
        flush()
        if not header_shown:  # a header with no rows at all
            for line in header:
                units.extend(self._text_units(line, next_sep()))
        return units

    def _code_units(self, lines: list[str], sep: str) -> list[_Unit]:
        """Line groups that fit, each re-wrapped in the block's fences."""
        whole = "\n".join(lines)
        if self._fits(whole):
            return [_Unit(whole, sep, overlappable=False)]
        opening = lines[0]
        closed = len(lines) > 1 and lines[-1].strip().startswith(opening.strip()[:3])
        closing = lines[-1] if closed else opening.strip()[:3]
        inner = lines[1:-1] if closed else lines[1:]
        units: list[_Unit] = []
        group: list[str] = []

        def wrapped(code: list[str]) -> str:
            return "\n".join([opening, *code, closing])

        def next_sep() -> str:
            return sep if not units else "\n"

        for line in inner:
            if self._fits(wrapped([*group, line])):
                group.append(line)
                continue
            if group:
                units.append(_Unit(wrapped(group), next_sep(), overlappable=False))
                group = []
            if self._fits(wrapped([line])):
                group.append(line)
            else:
                units.extend(self._text_units(line, next_sep()))
        if group or not units:
            units.append(_Unit(wrapped(group), next_sep(), overlappable=False))
        return units

    # -- packing -------------------------------------------------------------------------------

    def _pack(self, units: list[_Unit]) -> list[str]:
        """Greedily fill pieces with units, starting each new piece with overlap."""
        pieces: list[str] = []
        current: list[_Unit] = []
        for unit in units:
            if not current or self._fits(_render([*current, unit])):
                current.append(unit)
                continue
            pieces.append(_render(current))
            overlap = self._overlap(current)
            while overlap and not self._fits(_render([*overlap, unit])):
                overlap = overlap[1:]
            current = [*overlap, unit]
        if current:
            pieces.append(_render(current))
        return pieces

    def _overlap(self, units: list[_Unit]) -> list[_Unit]:
        """Trailing units (or trailing lines/sentences of the last one) within the overlap."""
        if self.overlap_tokens <= 0:
            return []
        tail: list[_Unit] = []
        for unit in reversed(units):
            if not unit.overlappable:
                break
            candidate = [unit, *tail]
            if self.count(_render(candidate)) <= self.overlap_tokens:
                tail = candidate
                continue
            if not tail:
                tail = self._overlap_of_text(unit.text)
            break
        return tail

    def _overlap_of_text(self, text: str) -> list[_Unit]:
        """The trailing lines, else whole sentences of `text`, that fit the overlap.

        Never a sentence's last few words: a chunk opening mid-sentence embeds badly. (A
        sentence split into words is already a run of word units, so its overlap is words.)
        Nor the last sentences of a step or a bullet: cut from its item, "Follow the prompts on
        the mobile app and vehicle touchscreen to set up your phone key." opened the next chunk
        as if it were prose of its own (44 of the Model 3 manual's 1,104 chunks opened so),
        and an answer quoted it as the whole of how to set up a phone key.
        """
        lines = text.split("\n")
        if len(lines) > 1:
            parts, sep = lines, "\n"
        elif _LIST_ITEM_RE.match(text):
            return []
        else:
            parts, sep = _split_sentences(text), " "
        if len(parts) <= 1:
            return []
        tail: list[_Unit] = []
        for part in reversed(parts):
            candidate = [_Unit(part.strip(), sep), *tail]
            if self.count(_render(candidate)) > self.overlap_tokens:
                break
            tail = candidate
        if not tail:
            return self._overlap_of_text(parts[-1].strip())
        return tail
