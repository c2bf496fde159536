"""Stopping generated text that repeats itself, and keeping the part before the loop.

Small models decoding greedily fall into loops: the same numbered step twenty times ("20.
Unscrew the outlet. 21. Unscrew the outlet. ..."), the same sentence paragraph after paragraph,
or a phrase that never ends ("the the the ..."). Any endpoint can do it, local or remote, so the
guard works on text, not on tokens: :class:`LoopGuard` watches a stream piece by piece and says
when it loops; :func:`find_loop` is the same test on a whole text.

Text loops when, after list markers ("3.", "-") and citation markers ("[2]") are set aside:

* a line or sentence of at least :data:`MIN_UNIT_WORDS` words comes a third time, or twice in
  a row: a manual may honestly repeat a short sentence in two steps ("Tighten the nut to 6
  Nm.", "See Brakes."), but not over and over;
* a run of :data:`NGRAM_WORDS` words comes again, anywhere (a long phrase repeated inside
  one endless sentence, or a short one repeated back to back).

The loop starts at the second copy; what comes before it is kept, cut at the start of the
sentence or line the second copy begins (or inside a sentence that repeats itself from within).
Plain Python, no Django.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

__all__ = ["MIN_UNIT_WORDS", "NGRAM_WORDS", "LoopGuard", "find_loop", "without_loop"]

#: A line or sentence this long (in words) that comes a third time, or twice in a row, is a
#: loop; shorter ones ("Yes.", "Note:") may repeat honestly and are left to the n-gram rule.
MIN_UNIT_WORDS: Final = 3
#: A run of this many words that comes again is a loop. Manuals repeat runs of up to a dozen
#: words in parallel sentences ("Sentry Mode does not automatically enable at the location set
#: as Home ... as Work"); sixteen repeated word for word is a loop, and the rule still catches
#: "the the the ..." after seventeen words.
NGRAM_WORDS: Final = 16

_LIST_MARKER: Final = re.compile(r"^[ \t]*(?:\d{1,3}[.)]|[-*+\u2022])[ \t]+", re.MULTILINE)
# "1. Do this. 2. Do that." on one line: a number after a sentence is an enumerator too.
_INLINE_MARKER: Final = re.compile(r"(?<=[.!?:]\s)\d{1,3}[.)](?=\s)")
_CITATION: Final = re.compile(r"\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
_WORD: Final = re.compile(r"\w+(?:['\u2019.,/-]\w+)*")
# A unit ends at a line break, or after sentence punctuation followed by white space; also at
# a colon that introduces an inline list ("To open it: 1. ..."), found before the list markers
# are blanked out.
_UNIT_END: Final = re.compile(r"\n|[.!?]+[\"')\]]*(?=\s)")
_LIST_COLON: Final = re.compile(r":(?=\s+\d{1,3}[.)]\s)")


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    words: tuple[str, ...]


def _masked(text: str) -> str:
    """``text`` with list and citation markers blanked out, offsets unchanged."""

    def blank(match: re.Match[str]) -> str:
        return " " * len(match.group(0))

    for pattern in (_LIST_MARKER, _INLINE_MARKER, _CITATION):
        text = pattern.sub(blank, text)
    return text


def _units(text: str, *, final: bool) -> tuple[list[_Unit], list[tuple[str, int]]]:
    """Complete lines/sentences of ``text`` (and the last one too when ``final``), and every
    word with its offset."""
    masked = _masked(text)
    words = [(match.group(0).lower(), match.start()) for match in _WORD.finditer(masked)]
    units: list[_Unit] = []
    start = 0
    word_index = 0
    ends = sorted(
        {match.end() for match in _UNIT_END.finditer(masked)}
        | {match.end() for match in _LIST_COLON.finditer(text)}
    )
    if final and (not ends or ends[-1] < len(text)):
        ends.append(len(text))
    for end in ends:
        unit_words = []
        while word_index < len(words) and words[word_index][1] < end:
            unit_words.append(words[word_index][0])
            word_index += 1
        # The unit starts at its first word; leading markers and spaces belong to it.
        units.append(_Unit(start=start, end=end, words=tuple(unit_words)))
        start = end
    return units, words


def find_loop(text: str, *, final: bool = True) -> int | None:
    """The offset in ``text`` where it starts repeating itself, or None (see the module
    docstring). With ``final=False`` the last, possibly unfinished, sentence is not judged as
    a repeated unit yet (a stream may still be writing it)."""
    units, words = _units(text, final=final)
    loop_at: int | None = None

    # A unit's second copy starts the loop once it is clear that it loops: a third copy, or a
    # second right after the first.
    copies: dict[tuple[str, ...], list[int]] = {}
    previous: tuple[str, ...] | None = None
    for unit in units:
        if not unit.words:
            continue
        key = unit.words
        if len(key) >= MIN_UNIT_WORDS:
            seen = copies.setdefault(key, [])
            seen.append(unit.start)
            if len(seen) >= 3 or (len(seen) == 2 and previous == key):
                loop_at = _unit_begin(text, seen[1])
                break
        previous = key

    seen_ngrams: dict[tuple[str, ...], int] = {}
    for index in range(len(words) - NGRAM_WORDS + 1):
        key = tuple(word for word, _ in words[index : index + NGRAM_WORDS])
        if key not in seen_ngrams:
            seen_ngrams[key] = index
            continue
        first = words[seen_ngrams[key]][1]
        offset = words[index][1]
        if loop_at is not None and offset >= loop_at:
            break
        # Cut at the start of the sentence or line the copy begins, unless that sentence also
        # holds the first copy ("the the the ..."): then inside it, at the copy.
        begin = _unit_begin(text, _containing_unit_start(units, offset))
        loop_at = begin if begin > first else offset
        break
    return loop_at


def _containing_unit_start(units: list[_Unit], offset: int) -> int:
    for unit in units:
        if unit.start <= offset < unit.end:
            return unit.start
    return units[-1].end if units else 0


def _unit_begin(text: str, start: int) -> int:
    """A unit's start moved past the white space and sentence gap that precede its text."""
    while start < len(text) and text[start] in " \t":
        start += 1
    return start


def without_loop(text: str) -> tuple[str, bool]:
    """``text`` cut before its loop (trailing space and dangling list markers removed), and
    whether it looped."""
    at = find_loop(text)
    if at is None:
        return text, False
    return _tidy_cut(text[:at]), True


def _tidy_cut(text: str) -> str:
    # A cut at a line start leaves the previous line's break; one inside a numbered step
    # leaves its marker ("12. ") alone on the line.
    text = text.rstrip()
    return re.sub(r"(?:^|\n)[ \t]*(?:\d{1,3}[.)]|[-*+\u2022])?[ \t]*$", "", text).rstrip()


class LoopGuard:
    """Watches generated text as it streams and stops it at the first loop.

    ``feed(piece)`` returns the text that is safe to show so far: everything up to the end of
    the last complete sentence or line, unless a loop has begun (then nothing more). Once
    :attr:`looped` is true, the caller should stop the stream. :attr:`text` is what to keep: the
    whole text, or the part before the loop. A loop can only be recognised once its copy is
    written, so in rare cases (a phrase repeated inside one long sentence) the released text
    reaches past the cut; :attr:`text` is authoritative.
    """

    def __init__(self) -> None:
        self._raw = ""
        self._released = 0
        self._loop_at: int | None = None
        self.finished = False

    @property
    def looped(self) -> bool:
        return self._loop_at is not None

    @property
    def raw(self) -> str:
        """Everything the model wrote that reached the guard, the loop included."""
        return self._raw

    @property
    def text(self) -> str:
        """The text to keep: all of it, or what came before the loop."""
        if self._loop_at is None:
            return self._raw if self.finished else self._raw[: self._released]
        return _tidy_cut(self._raw[: self._loop_at])

    def feed(self, piece: str) -> str:
        """Add a piece of the stream; return the newly safe text (often empty)."""
        if self.looped or self.finished or not piece:
            return ""
        self._raw += piece
        at = find_loop(self._raw, final=False)
        if at is not None:
            self._loop_at = at
            return self._release(len(_tidy_cut(self._raw[:at])))
        return self._release(self._safe_end())

    def _safe_end(self) -> int:
        """Where the released text may end: after the last complete sentence or line, but
        before a sentence that repeats an earlier one until it is clear that no loop follows
        (a new sentence comes after it, or the stream ends)."""
        units, _ = _units(self._raw, final=False)
        seen: set[tuple[str, ...]] = set()
        end = self._released
        pending: int | None = None
        for unit in units:
            if unit.end <= self._released:
                seen.add(unit.words)
                continue
            if unit.words and len(unit.words) >= MIN_UNIT_WORDS and unit.words in seen:
                pending = unit.start if pending is None else pending
            elif unit.words:
                pending = None
                end = unit.end
            elif pending is None:
                end = unit.end
            seen.add(unit.words)
        return end

    def finish(self) -> str:
        """The stream has ended: judge its last sentence too and release what is left."""
        if self.finished:
            return ""
        self.finished = True
        if self.looped:
            return ""
        at = find_loop(self._raw, final=True)
        if at is not None:
            self._loop_at = at
            return self._release(len(_tidy_cut(self._raw[:at])))
        return self._release(len(self._raw))

    def _release(self, upto: int) -> str:
        # The white space after a finished sentence goes with it: it is what tells a reader
        # downstream that the sentence is over.
        if not self.looped:
            while upto < len(self._raw) and self._raw[upto] in " \t\n":
                upto += 1
        if upto <= self._released:
            return ""
        out = self._raw[self._released : upto]
        self._released = upto
        return out
