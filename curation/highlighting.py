"""Find the sentence of a source passage that supports an answer, and mark it up for review.

Plain functions without Django: the focused review page shows a pair's source chunk with the
sentence that best supports its answer highlighted, so a reviewer checks the answer against the
manual at a glance instead of reading the whole passage.
"""

from __future__ import annotations

import html
import re
from typing import Final

from curation.qa.quality import _content_words

# A sentence ends at ., ! or ? followed by whitespace; a line break always ends one, because
# manual text is markdown where list items, table rows and headings are one per line.
_SENTENCE_END_RE: Final = re.compile(r"(?<=[.!?])[ \t]+|\n+")


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` offsets of each non-blank sentence or line of ``text``, in order.

    Each span is stripped of surrounding whitespace, so ``text[start:end]`` is the sentence.
    """
    spans: list[tuple[int, int]] = []
    start = 0
    for boundary in _SENTENCE_END_RE.finditer(text):
        spans.append((start, boundary.start()))
        start = boundary.end()
    spans.append((start, len(text)))
    stripped = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if a < b:
            stripped.append((a, b))
    return stripped


def supporting_sentence_span(answer: str, source: str) -> tuple[int, int] | None:
    """The span of the ``source`` sentence sharing the most content words with ``answer``.

    Content words are those ``curation.qa.lexical_grounding`` counts (lower-cased, stopwords
    dropped, numbers kept), each counted once. Ties go to the sentence where the shared words
    make up the larger share (the tighter match), then to the earlier one. None when no
    sentence shares a single content word with the answer, so nothing is highlighted rather
    than something arbitrary.
    """
    answer_words = _content_words(answer)
    if not answer_words:
        return None
    best: tuple[int, float] | None = None
    best_span: tuple[int, int] | None = None
    for start, end in sentence_spans(source):
        words = _content_words(source[start:end])
        shared = len(answer_words & words)
        if not shared:
            continue
        key = (shared, shared / len(words))
        if best is None or key > best:
            best, best_span = key, (start, end)
    return best_span


def highlight_supporting_sentence(answer: str, source: str) -> str:
    """``source`` as HTML, escaped, with its supporting sentence wrapped in ``<mark>``.

    Everything from the source is escaped (manual text is untrusted as HTML); the only markup in
    the result is the one ``<mark>`` element. Line breaks are kept as they are, for a container
    with ``white-space: pre-wrap``.
    """
    span = supporting_sentence_span(answer, source)
    if span is None:
        return html.escape(source)
    start, end = span
    return (
        html.escape(source[:start])
        + "<mark>"
        + html.escape(source[start:end])
        + "</mark>"
        + html.escape(source[end:])
    )
