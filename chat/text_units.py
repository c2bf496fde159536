"""A manual passage as the pieces an answer can quote, and the words a question asks about.

Plain Python (no Django). Both the quote composer (``chat.quoting``) and answer verification
(``chat.verification``) read passages this way:

* :func:`passage_blocks` splits a chunk's markdown into blocks: paragraphs (split into
  sentences), numbered procedures (steps, with the Note/Warning lines between them, the text
  on the lines after a step when the next step follows, and the sentence that introduces
  them), bullet lists, and tables (a header and rows). A table row
  is quoted with its header, a procedure whole. A figure's caption on a line of its own
  ("Figure 1. ...") is left out: it labels a picture that a quote does not show.
* :func:`split_sentences` splits prose into sentences without breaking "e.g.", "approx.",
  "1.5" or "184.8 in." apart (a unit only after a number: "fully plugged in. Then" is two),
  and keeps a numbered step or a bullet as one sentence.
* :func:`terms` gives the stemmed content words of a text (English Snowball stemmer and the QA
  gate's stopwords), so "charging" in a question meets "charge" in the manual; IDF weights
  come from :class:`Vocabulary`, which also knows the initials of the manual's names
  (``chat.names.acronyms``), so an owner's "FSD" is spelled out as its "Full Self-Driving".
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from chat.names import acronyms, codes, designations, short_forms
from chat.stemming import stem
from curation.qa import STOPWORDS
from manualqa.lib.captions import is_caption_line

__all__ = [
    "BULLET_LINE",
    "CALLOUT_LINE",
    "MEASURE_NOUNS",
    "Block",
    "passage_plain_units",
    "Unit",
    "Vocabulary",
    "is_footnote",
    "passage_blocks",
    "split_sentences",
    "terms",
    "words",
]

# A numbered step, a bullet, a table row and the line under a table's header
# (``chat.continuation`` too).
STEP_LINE: Final = re.compile(r"^\s*(\d{1,3})[.)]\s+(.*)$")
BULLET_LINE: Final = re.compile(r"^\s*[-*+\u2022]\s+(.*)$")
_HEADING: Final = re.compile(r"^\s*#{1,6}\s+(.*)$")
TABLE_LINE: Final = re.compile(r"^\s*\|.*\|\s*$")
TABLE_SEPARATOR: Final = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
# "<br>" at the end of a prose line is only a line break ("To burnish the brakes: <br>").
_TRAILING_BREAK: Final = re.compile(r"(?:\s*<br\s*/?>)+\s*$", re.IGNORECASE)
# "SOLID AMBER: The connector is not fully plugged in.": an item named by its first words.
_ITEM_LABEL: Final = re.compile(r"^([^:.!?]{1,60}):\s+\S")
# A sentence that opens on a label naming the case what follows is for: "If your vehicle's door
# handles are silver: You can usually ...". A label, not a clause: no comma before the colon, a
# capital after it ("When you lift your foot, the motor works as a generator: it slows ...").
_CASE: Final = re.compile(r"^(?i:if|when|for|on|with|in)\b[^.:!?,]{1,60}:\s+[A-Z]")
_CALLOUTS: Final = "note|warning|caution|tip|important"
CALLOUT_LINE: Final = re.compile(rf"^\s*(?:{_CALLOUTS})\b\s*:", re.IGNORECASE)
# A callout's word alone on its line, its text on the next ("Note" then "On some phones, ...").
_CALLOUT_WORD: Final = re.compile(rf"^\s*\**({_CALLOUTS})\**\s*$", re.IGNORECASE)
_WORD: Final = re.compile(r"\w+")
# A footnote: a line that starts with the mark of an entry elsewhere ("*Increase the tire
# pressure to 44 PSI ...", "**A/C desiccant bag replacement ...", "†..."), not a bullet ("* item")
# nor emphasis ("**Note:** ...", "*italic* words"), whose mark closes on the line.
_FOOTNOTE: Final = re.compile(r"\s*(?:\*{1,3}|\u2020|\u2021)(?=[A-Za-z0-9(])(?![^*\n]*\*)")
# A word an owner writes as initials: in capitals ("FSD", "TACCs"), or without a vowel ("fsd").
_INITIALS: Final = re.compile(r"[A-Z]{3,6}s?")
_VOWEL: Final = re.compile(r"[aeiouy]", re.IGNORECASE)
_WORD_TOKEN: Final = re.compile(r"\b[A-Za-z]{3,7}\b")
# A designation run together ("m3", "model3"), not a unit after a figure ("0.4 m3").
_SHORT_FORM: Final = re.compile(r"(?<![\d.] )(?<![\d.])\b[A-Za-z]+\d[A-Za-z0-9]*\b")
_SPELT: Final = re.compile(r"\b[a-z]{4,}\b")
_RUN_TOGETHER: Final = re.compile(r"\b[a-z]+\d[a-z0-9]*\b")

#: "How wide is it?" asks for what a manual calls the width ("how long" is left out: it asks
#: for a time as often as for a length).
MEASURE_NOUNS: Final = {
    "wide": "width",
    "tall": "height",
    "high": "height",
    "heavy": "weight",
    "far": "distance",
    "fast": "speed",
    "deep": "depth",
    "big": "size",
}

# Words after which a period does not end a sentence.
_ABBREVIATIONS: Final = frozenset(
    "e.g i.e etc approx vs nos fig figs mr mrs ms dr st max incl esp ca cf al".split()  # noqa: SIM905
)
# ... and units, after a number only: "184.8 in. Overall" goes on, "fully plugged in. Then" ends.
_UNIT_ABBREVIATIONS: Final = frozenset("no in ft lb lbs oz sec min hr hrs".split())  # noqa: SIM905
_NUMBER_WORD: Final = re.compile(r"[\d.,/-]*\d[\d.,/-]*")
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class Unit:
    """The smallest piece of a passage a quote can hold: a sentence, a step, a bullet or a
    table row. ``text`` is as written (markdown for rows and items); ``plain`` is what is
    embedded and matched (a row as "Column: value; ..." so its numbers keep their meaning)."""

    kind: str  # "sentence", "step", "substep", "item", "row", "callout", "text" (of a step)
    text: str
    plain: str
    block: int
    index: int
    #: What names a row or an item among its siblings: a row's first cell ("AMBER - SOLID"),
    #: the words before an item's colon ("SOLID AMBER: The connector is not..."); else "".
    label: str = ""


@dataclass(frozen=True)
class Block:
    """A run of units quoted together or apart: ``paragraph``, ``steps``, ``items``, ``table``.

    ``lead_in`` is the sentence that introduces a procedure or list ("... follow these steps:"),
    ``header`` a table's header line (with its separator line)."""

    kind: str
    units: list[Unit] = field(default_factory=list)
    lead_in: str = ""
    header: str = ""


def words(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``."""
    return _WORD.findall(text.lower())


def terms(text: str) -> list[str]:
    """The stemmed content words of ``text``, in order (stopwords dropped, numbers kept)."""
    return [stem(word) for word in words(text) if word not in STOPWORDS]


def term_set(text: str) -> set[str]:
    """The terms of ``text``, and every two neighbouring terms run together, so that an owner's
    "seatbelt", "dashcam" or "headrest" is found where the manual writes "seat belt", "dash
    cam" or "head rest"."""
    found = terms(text)
    return {*found, *(first + second for first, second in itertools.pairwise(found))}


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; every line that is a step, bullet, callout or table row stays one
    sentence of its own, and paragraphs split at sentence punctuation."""
    sentences: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or TABLE_SEPARATOR.match(line):
            continue
        if STEP_LINE.match(line) or BULLET_LINE.match(line) or TABLE_LINE.match(line):
            sentences.append(line)
            continue
        sentences.extend(_prose_sentences(line))
    return sentences


def _prose_sentences(paragraph: str) -> list[str]:
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        before = paragraph[start : match.start()].rstrip("\"')]")
        words_before = before.split()
        last_word = words_before[-1].lower().rstrip(".") if words_before else ""
        if last_word in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
            continue  # "e.g. the", "approx. 5", "Fig. 2", "J. Smith"
        if last_word in _UNIT_ABBREVIATIONS:
            after_number = len(words_before) > 1 and _NUMBER_WORD.fullmatch(words_before[-2])
            numbered = last_word == "no" and paragraph[match.end() : match.end() + 1].isdigit()
            if after_number or numbered:
                continue  # "184.8 in. Overall", "5 min. Then", "No. 2"
        pieces.append(paragraph[start : match.start()].strip())
        start = match.end()
    pieces.append(paragraph[start:].strip())
    return [piece for piece in pieces if piece]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def passage_blocks(body: str) -> list[Block]:
    """The blocks of a passage's markdown body, in order (see the module docstring)."""
    blocks: list[Block] = []
    current: Block | None = None
    previous_blank = True

    def close() -> None:
        nonlocal current
        if current is not None and current.units:
            blocks.append(current)
        current = None

    def add(kind: str, text: str, plain: str | None = None, label: str = "") -> None:
        assert current is not None
        plain = plain if plain is not None else _plain(text)
        if kind == "item" and not label:
            named = _ITEM_LABEL.match(plain)
            label = named.group(1) if named else ""
        current.units.append(
            Unit(
                kind=kind,
                text=text,
                plain=plain,
                block=len(blocks),
                index=len(current.units),
                label=label,
            )
        )

    def open_list(kind: str) -> None:
        """Start a block of ``kind`` (steps or items) unless one is open, with the sentence
        that leads into it."""
        nonlocal current
        if current is not None and current.kind == kind:
            return
        lead_in = _take_lead_in(current, blocks)
        if current is not None and not current.units:
            current = None
        close()
        current = Block(kind=kind, lead_in=lead_in)

    header_cells: list[str] = []
    lines = _callouts_joined(body.splitlines())
    for number, raw_line in enumerate(lines):
        line = _TRAILING_BREAK.sub("", raw_line).strip()
        if not line:
            previous_blank = True
            if current is not None and current.kind in ("paragraph", "table"):
                close()
            continue
        if _HEADING.match(line):
            close()
            previous_blank = True
            continue
        if is_caption_line(line):
            # It labels a picture that a quote does not show, and the text around it says what
            # the picture shows; quoted, it read as the answer's opening line ("what tire
            # pressure should I use": "Tire and Loading Information label.", a caption split
            # after "Figure 1."). A procedure or list it stands in goes on after it.
            continue
        if TABLE_LINE.match(line) or (current is not None and current.kind == "table"):
            if current is None or current.kind != "table":
                close()
                current = Block(kind="table", header=line)
                header_cells = _cells(line)
                continue
            if TABLE_SEPARATOR.match(line):
                current = Block(kind="table", header=f"{current.header}\n{line}")
                continue
            if not TABLE_LINE.match(line):
                close()
            else:
                cells = _cells(line)
                plain = "; ".join(
                    f"{name}: {value}" if name else value
                    for name, value in zip(header_cells, cells, strict=False)
                    if value
                )
                add("row", line, plain, label=cells[0] if cells else "")
                continue
        step = STEP_LINE.match(line)
        if step:
            open_list("steps")
            add("step", line)
            previous_blank = False
            continue
        bullet = BULLET_LINE.match(line)
        if bullet:
            if (
                current is not None
                and current.kind == "steps"
                and current.units
                and (
                    current.units[-1].kind == "substep"
                    or current.units[-1].text.endswith(":")
                    or (
                        current.units[-1].kind == "step"
                        and not previous_blank
                        and _step_resumes(lines, number)
                    )
                )
            ):
                # "2. Choose a steering option:" followed by the options: one procedure; so
                # are bullets on the line after a step when the next step follows them ("3.
                # ... disconnect the two electrical connectors.", "- For the light, ...", "4.").
                add("substep", f"   {line}", _plain(line))
                previous_blank = False
                continue
            open_list("items")
            add("item", line)
            previous_blank = False
            continue
        if current is not None and current.kind in ("steps", "items"):
            # A Note/Warning between steps belongs to the procedure; other text after a
            # blank line, or not a callout, ends it.
            if CALLOUT_LINE.match(line) and not previous_blank:
                add("callout", line)
                continue
            if current.kind == "steps" and not previous_blank and _step_resumes(lines, number):
                # Text on the line after a step, with the next step further on in the same
                # run of lines, goes on with that step (a markdown "lazy" line): "1. Touch
                # Controls > Track Mode.", "When enabled, TRACK displays ...", "2. ...".
                add("text", line)
                continue
            close()
        if current is None or current.kind != "paragraph":
            close()
            current = Block(kind="paragraph")
        kind = "callout" if CALLOUT_LINE.match(line) else "sentence"
        for sentence in _prose_sentences(line):
            add(kind, sentence)
        previous_blank = False
    close()
    return blocks


def _take_lead_in(block: Block | None, blocks: list[Block]) -> str:
    """Detach the sentence that introduces a list ("Follow these steps:") from the paragraph
    just before it (open, or closed by a blank line), so that the list is quoted with it."""
    if block is None or not block.units:
        if not blocks or blocks[-1].kind != "paragraph":
            return ""
        block = blocks[-1]
    if block.kind != "paragraph":
        return ""
    # The sentence may stand before Notes and Warnings that precede the first step ("To
    # burnish the brakes:", "Note: Be sure to comply with local traffic laws.", "1. Drive...");
    # they come along with it.
    at = len(block.units) - 1
    while at > 0 and block.units[at].kind == "callout":
        at -= 1
    if not block.units[at].text.rstrip().endswith(":"):
        return ""
    # A sentence before it that opens on the case it is for ("If your vehicle's door handles
    # are silver: You can usually ... Perform the following ...:") says which case the
    # procedure is for; without it, one of two procedures reads as the only one.
    start, case = at, ""
    before = block.units[at - 1] if at else None
    if before is not None and before.kind == "sentence" and _CASE.match(before.text):
        start, case = at - 1, f"{before.text} "  # read on into the lead-in, as written
    taken = block.units[at:]
    del block.units[start:]
    if not block.units and blocks and blocks[-1] is block:
        blocks.pop()
    return case + "\n\n".join(unit.text for unit in taken)


def _step_resumes(lines: list[str], at: int) -> bool:
    """Whether a numbered step follows ``lines[at]`` before the next blank line, numbered one
    more than the last step before it."""
    before = next(
        (found for line in reversed(lines[:at]) if (found := STEP_LINE.match(line))), None
    )
    if before is None:
        return False
    for line in lines[at + 1 :]:
        if not line.strip() or _HEADING.match(line):
            return False
        if found := STEP_LINE.match(line):
            return int(found.group(1)) == int(before.group(1)) + 1
    return False


def _callouts_joined(lines: list[str]) -> list[str]:
    """``lines`` with a callout's word on a line of its own joined to the text on the next
    ("Note" + "On some phones, ..." as "Note: On some phones, ..."): a Note between two steps
    belongs to the procedure, and reads as one."""
    joined: list[str] = []
    index = 0
    while index < len(lines):
        word = _CALLOUT_WORD.match(lines[index])
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if (
            word
            and following
            and not (
                _HEADING.match(following)
                or STEP_LINE.match(following)
                or BULLET_LINE.match(following)
                or TABLE_LINE.match(following)
            )
        ):
            joined.append(f"{word.group(1).capitalize()}: {following}")
            index += 2
            continue
        joined.append(lines[index])
        index += 1
    return joined


def _plain(text: str) -> str:
    """Markdown emphasis and list markers removed: the words a reader sees."""
    text = STEP_LINE.sub(r"\2", text)
    text = BULLET_LINE.sub(r"\1", text)
    return re.sub(r"[*_`]+", "", text).strip()


@dataclass(frozen=True)
class Vocabulary:
    """How many of a manual's ``documents`` (chunks) hold each stemmed term (and each two
    neighbouring terms run together, :func:`term_set`), for IDF weights.

    A term the manual never uses gets the highest weight: an owner's question that hinges on
    one ("resale", "insurance") asks about something the manual does not cover."""

    document_frequency: Mapping[str, int]
    documents: int
    #: The product designations the manual names ("model 3", "gen 2"; ``chat.names``).
    designations: frozenset[str] = frozenset()
    #: Initials of the names the manual uses that it never writes as a word, with the name
    #: ("fsd" -> "Full Self Driving"; ``chat.names``): an owner's "FSD" is the manual's name.
    acronyms: Mapping[str, str] = field(default_factory=dict)
    #: How an owner runs the designations together, with the designation ("m3" -> "Model 3";
    #: ``chat.names.short_forms``); none the manual writes as a word.
    short_forms: Mapping[str, str] = field(default_factory=dict)
    #: The words the manual writes, of four letters or more (``chat.spelling``).
    spellings: frozenset[str] = frozenset()
    #: The codes the manual gives ("brk040"; ``chat.names.codes``).
    codes: frozenset[str] = frozenset()
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Vocabulary:
        frequency: dict[str, int] = {}
        named: set[str] = set()
        initials: dict[str, str] = {}
        shortened: dict[str, str] = {}
        runs: set[str] = set()  # what the manual itself runs together ("m3" for cubic metres)
        spellings: set[str] = set()
        given: set[str] = set()
        count = 0
        for text in texts:
            count += 1
            for term in term_set(text):
                frequency[term] = frequency.get(term, 0) + 1
            spellings.update(_SPELT.findall(text.lower()))
            named.update(designations(text))
            for short, written in short_forms(text).items():
                shortened.setdefault(short, written)
            runs.update(_RUN_TOGETHER.findall(text.lower()))
            given.update(codes(text))
            for short, name in acronyms(text).items():
                initials.setdefault(short, name)
        return cls(
            document_frequency=frequency,
            documents=count,
            designations=frozenset(named),
            acronyms={
                short: name
                for short, name in initials.items()
                if short not in frequency  # a word the manual writes is that word
            },
            short_forms={
                short: written for short, written in shortened.items() if short not in runs
            },
            spellings=frozenset(spellings),
            codes=frozenset(given),
        )

    def spell_out(self, question: str) -> str:
        """``question`` with each word that reads as initials ("FSD", "fsd": capitals, or no
        vowel) and that the manual never writes, but that stands for one of its names, replaced
        by the name ("Full Self-Driving"); and each designation run together ("m3", "model3")
        by the manual's ("Model 3")."""

        def name(match: re.Match) -> str:
            written = match.group(0)
            if not _INITIALS.fullmatch(written) and _VOWEL.search(written):
                return written
            term = stem(written.lower())
            if term in self.document_frequency or term not in self.acronyms:
                return written
            return self.acronyms[term]

        def designation(match: re.Match) -> str:
            return self.short_forms.get(match.group(0).lower(), match.group(0))

        return _SHORT_FORM.sub(designation, _WORD_TOKEN.sub(name, question))

    def idf(self, term: str) -> float:
        """``log((N + 1) / (df + 0.5))``: about 0 for a term in every chunk, highest for one in
        none."""
        frequency = self.document_frequency.get(term, 0)
        return max(0.0, math.log((self.documents + 1) / (frequency + 0.5)))

    def known(self, term: str, *, prefix: bool = False) -> bool:
        """Whether the manual uses ``term``; with ``prefix``, also a term of four letters or
        more that starts a word the manual uses ("temp" for "temperature", "config"), and a
        noun in "-er" for what does what the manual names ("heater": the manual's "heat",
        "heating"; "wiper": "wipe")."""
        if self.document_frequency.get(term, 0) > 0:
            return True
        if not prefix or len(term) < 4:
            return False
        bases = (term[:-2], term[:-1]) if len(term) >= 6 and term.endswith("er") else ()
        if any(self.document_frequency.get(base, 0) > 0 for base in bases):
            return True
        ordered = self._ordered()
        index = bisect.bisect_left(ordered, term)
        return index < len(ordered) and ordered[index].startswith(term)

    def _ordered(self) -> list[str]:
        ordered = self._cache.get("ordered")
        if ordered is None:
            ordered = self._cache["ordered"] = sorted(self.document_frequency)
        return ordered


def weighted_coverage(
    question_terms: Sequence[str],
    text_terms: Iterable[str],
    vocabulary: Vocabulary,
    aliases: Iterable[tuple[frozenset, frozenset]] = (),
) -> float:
    """Share of the question's IDF weight whose terms occur in ``text_terms`` (0..1; 1.0 for a
    question without content words). ``aliases``: ``(owner's terms, manual's terms)``; a text
    holding all of the manual's holds the owner's too ("turn signal" for "blinker")."""
    unique = list(dict.fromkeys(question_terms))
    total = sum(vocabulary.idf(term) for term in unique)
    if total <= 0:
        return 1.0
    present = set(text_terms)
    present.update(*(owner for owner, name in aliases if name <= present))
    return sum(vocabulary.idf(term) for term in unique if term in present) / total


def is_footnote(text: str) -> bool:
    """Whether ``text`` (a unit as written) is a footnote: it qualifies an entry marked
    elsewhere, a table's row or a figure ("*Increase the tire pressure to 44 PSI prior to
    driving 136 mph or faster."), and read alone it answers another question."""
    return bool(_FOOTNOTE.match(text))


def passage_plain_units(body: str) -> list[tuple[str, str]]:
    """Every piece of a passage as plain text, in order, with the context it is read in:
    sentences, steps and items (with the line that introduces their list), the lines that
    introduce lists, table headers and rows (with the header and the sentence before the
    table: "Inflate the tires to the pressures below."). What an answer sentence is checked
    against."""
    found: list[tuple[str, str]] = []
    previous_line = ""
    for block in passage_blocks(body):
        context = ""
        if block.lead_in:
            context = _plain(block.lead_in)
            found.append((context, ""))
        if block.header:
            header = _plain(block.header.splitlines()[0])
            context = f"{previous_line} {header}".strip()
            found.append((header, previous_line))
        found.extend((unit.plain, context) for unit in block.units)
        if block.units:
            previous_line = block.units[-1].plain if block.kind == "paragraph" else ""
    return found
