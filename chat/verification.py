"""Checking a generated answer against the passages it was given, sentence by sentence.

Plain Python (no Django); the embedding model comes in as a function. A model can write a
sentence the manual does not support: a number it made up ("inflate to 35 PSI" where the
manual says 42), a step from another car, advice from general knowledge. :func:`verify` splits
the answer into sentences and steps (``chat.text_units.split_sentences``) and scores each with
the QA pairs' grounding scorer (``curation.qa``: the share of its content words found in the
passages, averaged with its embedding similarity to the closest passage sentence), plus one
hard rule: **every number, with its unit, must be in the passages**. A sentence is supported
when its numbers are there and its grounding score reaches :data:`SUPPORT_THRESHOLD`.

The answer shown to an owner keeps only supported sentences (:attr:`Verification.text`); the
verdicts say for every sentence what was kept or cut and why, for the record a reviewer reads.
Sentences that state nothing ("Here is how:") are dropped without counting either way; a
decline ("The manual does not say.") is marked as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Final

import numpy as np

from chat.text_units import passage_plain_units, split_sentences, terms, words
from curation import qa

__all__ = [
    "NUMBER_WORDS",
    "SUPPORT_THRESHOLD",
    "UNITS",
    "Verdict",
    "Verification",
    "amount_units_given",
    "figure_units",
    "numbers_with_units",
    "torque_units",
    "rebuild",
    "verify",
    "word_count",
]

Embed = Callable[[list[str]], np.ndarray]

#: A sentence whose grounding score (``curation.qa.grounding_score``) reaches this, with all of
#: its numbers in the passages, is supported. See ``tests/chat/test_verification.py`` for the
#: sentences it was set on.
SUPPORT_THRESHOLD: Final = 0.55
#: Below this share of its content words in the passage it rests on, no similarity saves a
#: sentence.
MIN_LEXICAL: Final = 0.75
#: A sentence rests on one place: one of the units (sentence, step, row) most like it in
#: meaning or sharing most of its words, with this many neighbours either side.
CANDIDATE_UNITS: Final = 3
WINDOW_REACH: Final = 1

_CITATION: Final = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")
_LIST_MARKER: Final = re.compile(r"^\s*(?:\d{1,3}[.)]|[-*+\u2022])\s+")
_DECLINE: Final = re.compile(
    r"^\W*(?:the\s+)?(?:manual|passages?|text)\s+(?:does|do)\s*n[o'\u2019]?t\s+"
    r"(?:say|cover|mention|specify|state|provide|include|give|list|explain|answer)",
    re.IGNORECASE,
)

#: Numbers written as words, with their value in digits.
NUMBER_WORDS: Final = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "  # noqa: SIM905
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "ninety": "90", "hundred": "100"}
# Units as the manual writes them, each reduced to one name.
UNITS: Final = {
    "psi": "psi", "kpa": "kpa", "bar": "bar",
    "mph": "mph", "km/h": "km/h", "kph": "km/h", "kmh": "km/h",
    "%": "%", "percent": "%",
    "second": "s", "seconds": "s", "sec": "s", "secs": "s",
    "minute": "min", "minutes": "min", "min": "min", "mins": "min",
    "hour": "h", "hours": "h", "hr": "h", "hrs": "h",
    "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year",
    "mile": "mi", "miles": "mi", "mi": "mi", "km": "km", "kilometers": "km", "kilometres": "km",
    "m": "m", "meter": "m", "meters": "m", "metre": "m", "metres": "m",
    "mm": "mm", "cm": "cm", "ft": "ft", "feet": "ft", "foot": "ft",
    "inch": "in", "inches": "in", "in.": "in",
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "kg": "kg", "kilograms": "kg",
    "degree": "deg", "degrees": "deg", "°": "deg", "°c": "deg", "°f": "deg",
    "v": "v", "volt": "v", "volts": "v",
    "hp": "hp", "horsepower": "hp", "bhp": "hp",
    "a": "a", "amp": "a", "amps": "a", "kw": "kw", "kwh": "kwh", "w": "w", "l": "l",
    "liters": "l", "litres": "l", "gb": "gb", "mb/s": "mb/s",
    "gallon": "gal", "gallons": "gal", "gal": "gal",
    "db": "db", "dba": "db", "decibel": "db", "decibels": "db",
    "nm": "nm", "ftlb": "ftlb",
}  # fmt: skip
# A torque's unit as the manual and owners write it in two words ("4 ft-lbs", "129 lb. ft",
# "ft lbs", "foot-pounds"): :func:`torque_units` reads it as one, which its second word alone
# ("lbs", a weight) would not be.
_TORQUE_UNIT: Final = re.compile(
    r"\b(?:ft|foot|feet)\.?[\s·-]*(?:lbs?|lbf|pounds?)\b\.?|"
    r"\b(?:lbs?|lbf|pounds?)\.?[\s·-]*(?:ft|feet|foot)\b\.?",
    re.IGNORECASE,
)
_NEWTON_METRE: Final = re.compile(
    r"(?<=\d)\s*N\s?[·-]\s?m\b|\bnewton[\s-]?met(?:er|re)s?\b", re.IGNORECASE
)
# A slash between a unit and the next figure parts two figures of one amount ("3 Nm/2.2 ft-lbs").
_FIGURES_BY_SLASH: Final = re.compile(r"(?<=[a-z])/(?=\d)", re.IGNORECASE)


def torque_units(text: str) -> str:
    """``text`` with each two-word unit of torque written as one (:data:`UNITS`' "ftlb" and
    "nm": "4 ft-lbs", "103 lbf·ft", "140 N·m")."""
    return _NEWTON_METRE.sub(" nm", _TORQUE_UNIT.sub("ftlb", text))


# A number and its unit: apart ("42 PSI", "5-minute", "ten seconds") or, after digits, written
# on to it ("12A", "240V", "10mm"), which only a unit's own name may be ("3rd" is no figure).
_NUMBER_TOKEN: Final = re.compile(
    r"(?<![\w/.])(?:(\d+(?:[,.]\d+)*)("
    + "|".join(sorted((re.escape(unit) for unit in UNITS if unit[0].isalpha()), key=len)[::-1])
    + r")(?![\w/])|(\d+(?:[,.]\d+)*(?:/\d+)?|"
    + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True))
    + r")(?![\w/])(?:-|\s*)(%|°\s?[cf](?![a-z])|°|[a-z]+(?:/[a-z]+)?\.?)?)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Verdict:
    """What verification decided about one sentence of an answer."""

    text: str
    supported: bool
    #: "supported", "number", "negation", "weak", "empty", "decline" or "unfinished".
    reason: str
    detail: str = ""
    score: float | None = None
    lexical: float | None = None
    semantic: float | None = None
    #: The citation number of the passage that supports it best.
    passage: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verification:
    """Every sentence's verdict, and the answer rebuilt from the supported ones."""

    verdicts: list[Verdict]
    text: str

    @property
    def counted(self) -> list[Verdict]:
        """The verdicts of sentences that state something (not empty, not a decline)."""
        return [v for v in self.verdicts if v.reason not in ("empty", "decline", "unfinished")]

    @property
    def supported_rate(self) -> float | None:
        """Share of stated sentences that the passages support; None when there are none."""
        counted = self.counted
        if not counted:
            return None
        return sum(v.supported for v in counted) / len(counted)

    @property
    def dropped(self) -> list[Verdict]:
        return [v for v in self.counted if not v.supported]

    @property
    def declined(self) -> bool:
        return any(v.reason == "decline" for v in self.verdicts)


def _normal_number(token: str) -> str:
    token = token.lower()
    if token in NUMBER_WORDS:
        return NUMBER_WORDS[token]
    return token.replace(",", "")


def numbers_with_units(text: str) -> list[tuple[str, str | None]]:
    """``(number, unit)`` for every number in ``text`` ("6,250 miles" -> ("6250", "mi"),
    "five minutes" -> ("5", "min"), "42" -> ("42", None)); list markers and citation markers
    are not numbers."""
    text = _FIGURES_BY_SLASH.sub(" / ", torque_units(_CITATION.sub(" ", text)))
    text = "\n".join(_LIST_MARKER.sub("", line) for line in text.splitlines())
    found = []
    for match in _NUMBER_TOKEN.finditer(text):
        written = match.group(1) or match.group(3)
        number = _normal_number(written)
        unit_word = "".join((match.group(2) or match.group(4) or "").lower().split())
        unit = UNITS.get(unit_word) or UNITS.get(unit_word.rstrip("."))
        if written.lower() in NUMBER_WORDS and unit is None:
            continue  # "one of the doors", "two ways": a word, not a figure
        found.append((number, unit))
    return found


def figure_units(text: str) -> set[str]:
    """The units of the figures ``text`` gives ("42 PSI (290 kPa)" -> {"psi", "kpa"}), by
    :data:`UNITS`' names; a bare number has none."""
    return {unit for _, unit in numbers_with_units(text) if unit}


# A figure joined to its unit by a hyphen names a size, not an amount: "19-inch wheels",
# "a 12-volt battery".
_SIZE_NAME: Final = re.compile(
    r"\b\d+(?:\.\d+)?-(?:inch|in|mm|cm|volt|v|amp|a|kw|kwh)\b", re.IGNORECASE
)


def amount_units_given(text: str) -> set[str]:
    """The units of the amounts ``text`` gives (:func:`figure_units`), a size named with a
    hyphen left out: "19-inch wheels reduce range by about 5%" gives no length."""
    return figure_units(_SIZE_NAME.sub(" ", text))


def _missing_numbers(sentence: str, source: str) -> list[str]:
    available = numbers_with_units(source)
    bare = {number for number, _ in available}
    paired = set(available)
    missing = []
    for number, unit in numbers_with_units(sentence):
        if number not in bare or (unit is not None and (number, unit) not in paired):
            missing.append(f"{number} {unit}" if unit else number)
    return missing


def verify(
    answer: str,
    passages: Sequence[tuple[int, str]],
    *,
    embed: Embed,
    threshold: float = SUPPORT_THRESHOLD,
) -> Verification:
    """Check ``answer`` against ``passages`` (``(citation number, text)`` pairs) sentence by
    sentence; see the module docstring."""
    sentences = split_sentences(answer)
    units = [
        (number, plain, context)
        for number, text in passages
        for plain, context in passage_plain_units(text)
    ]
    to_embed = [_plain(sentence) for sentence in sentences if terms(_plain(sentence))]
    vectors: dict[str, np.ndarray] = {}
    if to_embed and units:
        matrix = embed([*to_embed, *[plain for _, plain, _ in units]])
        unit_vectors = matrix[len(to_embed) :]
        for text, vector in zip(to_embed, matrix[: len(to_embed)], strict=True):
            vectors[text] = unit_vectors @ vector
    return Verification(
        verdicts=(verdicts := [_judge(s, units, vectors, threshold) for s in sentences]),
        text=rebuild(answer, verdicts),
    )


def _window(units: list[tuple[int, str, str]], index: int, reach: int) -> range:
    """The unit at ``index`` and up to ``reach`` neighbours either side in its passage."""
    number = units[index][0]
    lo, hi = index, index
    while lo > 0 and index - lo < reach and units[lo - 1][0] == number:
        lo -= 1
    while hi + 1 < len(units) and hi - index < reach and units[hi + 1][0] == number:
        hi += 1
    return range(lo, hi + 1)


def _judge(
    sentence: str,
    units: list[tuple[int, str, str]],
    vectors: dict[str, np.ndarray],
    threshold: float,
) -> Verdict:
    """One sentence's verdict: it must be supported by one place in the passages (the unit
    most like it and its neighbours), words, numbers and all."""
    plain = _plain(sentence)
    if _DECLINE.match(plain):
        return Verdict(text=sentence, supported=False, reason="decline")
    if not terms(plain):  # no content words at all
        return Verdict(text=sentence, supported=False, reason="empty")
    if plain.rstrip().endswith("?"):
        return Verdict(text=sentence, supported=False, reason="weak", detail="a question")
    if _HEADING_ECHO.match(plain) and not _INSTRUCTION.search(plain):
        return Verdict(text=sentence, supported=False, reason="weak", detail="a heading path")
    if _ABOUT_PASSAGES.search(plain):
        return Verdict(
            text=sentence, supported=False, reason="weak", detail="talks about the passages"
        )
    similarities = vectors.get(plain)
    if similarities is None or not len(similarities):
        return Verdict(text=sentence, supported=False, reason="weak", detail="no passages")
    # Where it may rest: the units most like it in meaning, and those sharing most words; the
    # place that holds its numbers, then the best grounded, wins.
    overlap = np.array([qa.lexical_grounding(plain, text) for _, text, _ in units])
    candidates = dict.fromkeys(
        [*np.argsort(-similarities)[:CANDIDATE_UNITS], *np.argsort(-overlap)[:CANDIDATE_UNITS]]
    )
    best: tuple | None = None
    for index in candidates:
        span = _window(units, int(index), WINDOW_REACH)
        # A row is read with its table's header and the sentence before the table, a step with
        # the line that introduces its procedure.
        # (One unit a line: a title without a full stop ends a clause, "Unable to charge -
        # Too many Wall Connectors" is not one with the "Ensure no more than 3 ..." after it.)
        window = "\n".join([units[int(index)][2], *(units[i][1] for i in span)]).strip()
        lexical = qa.lexical_grounding(plain, window)
        semantic = float(max(similarities[i] for i in span))
        score = qa.grounding_score(lexical=lexical, semantic=semantic)
        missing = _missing_numbers(plain, window)
        key = (-len(missing), score)
        if best is None or key > best[0]:
            best = (key, score, lexical, semantic, units[int(index)][0], missing, window)
    _, score, lexical, semantic, passage, missing, resting = best
    common = {
        "score": round(score, 4),
        "lexical": round(lexical, 4),
        "semantic": round(semantic, 4),
        "passage": passage,
    }
    if missing:
        detail = "not in the passage it rests on: " + ", ".join(missing)
        return Verdict(text=sentence, supported=False, reason="number", detail=detail, **common)
    if _polarity_conflict(plain, resting):
        # "Let air out of hot tires" against "Do not let air out of hot tires": every content
        # word matches, the meaning is the opposite.
        detail = "the passage it rests on says the opposite"
        return Verdict(text=sentence, supported=False, reason="negation", detail=detail, **common)
    if score < threshold or lexical < MIN_LEXICAL:
        detail = f"grounding {score:.2f} (needs {threshold:.2f}), words found {lexical:.0%}"
        return Verdict(text=sentence, supported=False, reason="weak", detail=detail, **common)
    return Verdict(text=sentence, supported=True, reason="supported", **common)


# "Tires and Wheels > Recommended tire pressures": a passage's heading echoed, not a statement
# (a path with nothing around it; "touch Controls > Service > Wiper Service Mode" is an
# instruction).
_HEADING_ECHO: Final = re.compile(r"^\s*[A-Z][^.!?>:]{0,60}(?:\s>\s[^.!?>:]{1,60})+[.!?]?\s*$")
_INSTRUCTION: Final = re.compile(
    r"\b(?:touch|tap|press|select|choose|go|open|navigate|enable|turn|set|use|swipe)\b",
    re.IGNORECASE,
)
# "The passage [2] is incorrect", "the provided text": the model talking about its input.
_ABOUT_PASSAGES: Final = re.compile(
    r"\b(?:passages?|provided\s+(?:text|context|information)|the\s+context)\b", re.IGNORECASE
)
_NEGATION: Final = re.compile(
    r"\b(?:not|never|no|cannot|can't|don't|doesn't|didn't|won't|isn't|aren't|mustn't|"
    r"shouldn't|avoid|without)\b|n[o'\u2019]t\b",
    re.IGNORECASE,
)


# A table row's cells are statements of their own: "|BLUE - SOLID|... Not actively charging.|If
# you want to charge immediately, ...|" holds a "not" in one cell only.
_CLAUSE_BREAK: Final = re.compile(
    r"[.;:!?]\s+|,\s+|\s*\|\s*|\s*\n\s*|\s+(?=(?:if|because|when|unless|while|but|or|and then)\s)",
    re.IGNORECASE,
)


def _clauses(text: str) -> list[str]:
    return [clause for clause in _CLAUSE_BREAK.split(text) if terms(clause)]


def _shared_words(first: str, second: str) -> float:
    """Jaccard overlap of all the words, function words included ("will not" counts)."""
    a, b = set(words(first)), set(words(second))
    return len(a & b) / len(a | b) if a | b else 0.0


def _polarity_conflict(sentence: str, resting: str) -> bool:
    """Whether a clause of ``sentence`` drops (or adds) the negation of the passage clause it
    repeats: each clause is matched to the passage clause holding most of its words (on a
    tie, the one sharing most words, function words included). "Open the trunk." against
    "Open the trunk. If the trunk will not open, ..." agrees; "Let air out of hot tires."
    against "Do not let air out ..." does not."""
    candidates = _clauses(resting) or [resting]
    for clause in _clauses(sentence):
        match = max(
            candidates,
            key=lambda other: (
                qa.lexical_grounding(clause, other),
                qa.lexical_grounding(other, clause),
                _shared_words(clause, other),
            ),
        )
        if qa.lexical_grounding(clause, match) >= 0.5 and _negated(clause) != _negated(match):
            return True
    return False


def _negated(text: str) -> bool:
    return bool(_NEGATION.search(text.replace("\u2019", "'")))


def _plain(sentence: str) -> str:
    """A sentence without citation and list markers or emphasis: the words to check."""
    sentence = _CITATION.sub("", sentence)
    sentence = _LIST_MARKER.sub("", sentence)
    return re.sub(r"[*_`]+", "", sentence).strip()


def word_count(text: str) -> int:
    """How many words ``text`` says, its citation and list markers and emphasis left out: an
    answer of "Charging [1] [1], [1] [1][1] [1]" says one word."""
    return sum(len(words(_plain(line))) for line in text.splitlines())


def rebuild(answer: str, verdicts: list[Verdict]) -> str:
    """The answer with only its supported sentences, keeping its lines and paragraphs."""
    kept = {id(v) for v in verdicts if v.supported}
    queue = list(verdicts)
    paragraphs: list[str] = []
    for paragraph in re.split(r"\n\s*\n", answer.strip()):
        lines = []
        for line in paragraph.splitlines():
            pieces = []
            for sentence in split_sentences(line):
                verdict = queue.pop(0) if queue and queue[0].text == sentence else None
                if verdict is not None and id(verdict) in kept:
                    pieces.append(sentence)
            if pieces:
                lines.append(" ".join(pieces))
        if lines:
            paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)
