"""Splitting a chunk that does not fit an endpoint's context window."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

# --------------------------------------------------------------------------------------------
# Context fitting
# --------------------------------------------------------------------------------------------

# Boundaries from coarse to fine: paragraphs, lines (markdown lists and tables are one
# paragraph of many lines), sentences, words. A split is made in the whitespace at a boundary.
_BOUNDARY_RES: Final = (
    re.compile(r"\n[ \t]*\n\s*"),
    re.compile(r"\n\s*"),
    re.compile(r"(?<=[.!?])\s+"),
    re.compile(r"\s+"),
)


def split_to_fit(text: str, *, budget_tokens: int, count_tokens: Callable[[str], int]) -> list[str]:
    """Split ``text`` into parts of at most ``budget_tokens`` each, at natural boundaries.

    Used when a chunk plus the prompt around it does not fit an endpoint's context window:
    the caller subtracts the prompt and the room left for the reply from the window and
    generates from each part. Text that fits is returned unchanged as the only part.
    Otherwise parts are packed greedily from paragraphs; a paragraph too big on its own is
    split into lines, then sentences, then words, and (only for a single "word" longer than
    the budget) characters. Every part is a slice of ``text`` with its surrounding whitespace
    stripped, in order, and only the whitespace at the split points is dropped, so no text is
    lost. Token counts always come from ``count_tokens`` on the exact part, so the budget holds
    for any tokenizer.
    """
    if budget_tokens < 1:
        raise ValueError(f"budget_tokens must be at least 1, got {budget_tokens}")
    if count_tokens(text) <= budget_tokens:
        return [text]
    start, end = _strip_span(text, 0, len(text))
    return [text[a:b] for a, b in _split_span(text, start, end, 0, budget_tokens, count_tokens)]


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split_span(
    text: str,
    start: int,
    end: int,
    level: int,
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[tuple[int, int]]:
    """Spans covering text[start:end] (already stripped), each within the budget."""
    if count_tokens(text[start:end]) <= budget:
        return [(start, end)]
    if level == len(_BOUNDARY_RES):
        return _split_characters(text, start, end, budget, count_tokens)
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for boundary in _BOUNDARY_RES[level].finditer(text, start, end):
        if boundary.start() > piece_start:
            pieces.append((piece_start, boundary.start()))
        piece_start = boundary.end()
    if piece_start < end:
        pieces.append((piece_start, end))
    # A piece may end in spaces before the boundary's newline ("Text.  \n\nNext").
    pieces = [_strip_span(text, a, b) for a, b in pieces]
    spans: list[tuple[int, int]] = []
    group: tuple[int, int] | None = None
    for piece in pieces:
        if group is not None and count_tokens(text[group[0] : piece[1]]) <= budget:
            group = (group[0], piece[1])
            continue
        if group is not None:
            spans.append(group)
            group = None
        if count_tokens(text[piece[0] : piece[1]]) <= budget:
            group = piece
        else:
            spans.extend(_split_span(text, *piece, level + 1, budget, count_tokens))
    if group is not None:
        spans.append(group)
    return spans


def _split_characters(
    text: str, start: int, end: int, budget: int, count_tokens: Callable[[str], int]
) -> list[tuple[int, int]]:
    spans = []
    while start < end:
        # The longest prefix within the budget, found by binary search over its length.
        low, high = 1, end - start
        if count_tokens(text[start : start + 1]) > budget:
            raise ValueError(
                f"a budget of {budget} tokens cannot hold even the single character {text[start]!r}"
            )
        while low < high:
            middle = (low + high + 1) // 2
            if count_tokens(text[start : start + middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        spans.append((start, start + low))
        start += low
    return spans
