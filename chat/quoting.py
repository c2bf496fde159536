"""Quote-first answers: the smallest span of the best passages that answers the question.

Plain Python (no Django); the embedding model comes in as a function. :func:`compose_quote`
splits the retrieved passages into sentences, steps, bullets and table rows
(``chat.text_units``), scores each against the question, and quotes the best ones with what
they need to be read alone:

* a **step** brings its whole procedure, with the sentence that introduces it and the
  Note/Warning lines between steps: half a procedure is not safe to follow; when that
  sentence names no situation of its own ("In that situation, use the release cable:"), the
  sentence before it, which does, comes too; a procedure longer than ``procedure_max_words``
  comes from its first step as far as it fits (and at least to the step after this one);
* a **table row** brings the table's header (and the next best row). Rows and items named by
  a short label ("AMBER - SOLID", "BLUE: ...") are picked by the name the question gives:
  "solid blue" is not "AMBER - SOLID", however close the rest of the row reads;
* a **bullet** brings its list when the list is short, or when its lead-in offers a choice
  ("choose either of these options:", "do one of the following:"; whole up to
  ``procedure_max_words``, like a procedure): one option alone reads as the only one, and
  "can I get updates sooner" is answered by the second of two; else the sentence that
  introduces it, the items that score nearly as well, and the items after it up to the
  target length (like a sentence, an item is often explained by the next one);
* a **sentence** brings the sentences after it, then before it, within its passage, up to
  the word budget: in a manual the sentence that matches a question best often only restates
  it ("If the touchscreen stops responding, restart it."), and the answer follows. A title
  line before it (an alert's name) or a sentence it points back to ("This...", "Then...")
  comes first; it never ends on a line that introduces what it leaves out ("To install the
  hitch:"), and a procedure whose lead-in goes on from it ("If it still does not release,
  follow these steps:") comes with it. Every other window of sentences around it that
  reaches past it, fits the budget and does not start on a sentence that needs the one
  before is scored too: the sentence that answers may stand before the one that matches best
  ("Snow chains may be fitted only on 18-inch wheels." before "Do not fit snow chains on
  19-inch wheels.").
  Once chosen, a prose quote that stops in the middle of a paragraph takes the sentence
  after it when that keeps it within ``run_on_budget`` words: that sentence often completes
  it ("When Model 3 is in Park, touching the Dashcam icon displays the Viewer."); and, for a
  question asking how to do something, a prose quote that the steps of a procedure follow
  takes them (``chat.spans.into_procedure``: "You can restart your touchscreen if ...",
  its Warning, then "1. Shift into Park.").

A sentence that only sends the reader elsewhere ("For instructions on how to lift Model 3, see
Jacking and Lifting.") shares the question's words without answering it: it loses
``pointer_penalty``, and when it was among the best units, the passages of the section it names
gain it. So do those of a section that a sentence or Note among the best units refers to in
brackets ("If the touchscreen is unresponsive ..., you can restart it (see Restarting the
Touchscreen)."): the manual says that section tells how.

A footnote ("*Increase the tire pressure to 44 PSI prior to driving 136 mph or faster.")
qualifies an entry marked elsewhere: it loses ``footnote_penalty``, so that it is quoted only
when nothing else answers as well.

A unit that speaks of the other end of the car than the question ("the frunk", "the front
headrests": the rear trunk's load limit, the rear center head support), by its words or its
section's heading, loses ``side_penalty``.

A table row is embedded after its section's title ("Recommended tire pressures: Wheel: 18-inch
Aero wheel; ...; Front (cold): 290 kPa (42 PSI)"): its cells name the columns, not what the
table is of, and "what tire pressure should I use" read closer to a Note beside the table. So
is a span that quotes a table, for its whole-span score ("whats the recommended tire pressure").
A unit that holds a code the question gives ("red BRK-040 came up on the display") gains
``code_bonus``: the owner copied it off the screen, and it names the entry.

A table row with a cell that starts with words the question writes together ("turning
circle on a model 3? trying to see if i can pull a u-turn": the row "|Turning Circle (curb to
curb)|38 ft (11.6 m)|") gains ``named_row_bonus``: it names what is asked. So does a list item
whose whole label a question asking what something means names (``chat.asking.asks_for_meaning``:
"what does a red charge port light mean": "- RED: A fault is detected ...").

A question asking for a setting ("can I make it only unlock the driver's door", "what do I turn
on"), or how to do something ("how do i lock the car when walking away"), prefers a span that
says where the setting is ("Controls > Locks > Driver Door Unlock Mode") to one that only
describes what the car does ("Note: It is ultimately your responsibility to ensure your vehicle
is locked, even when Walk-Away Door Lock is enabled."), and a unit that opens on the very aim
it asks ("To open the glovebox, touch Controls > Glovebox.", ``chat.aims``) gains
``aim_bonus``. A question asking what to do something
with ("what can i clean the wiper blades with", ``chat.asking.asks_for_means``) prefers a unit
that names the means as the manual does ("... using washer fluid, isopropyl (rubbing) alcohol,
or non-abrasive glass cleaner") to one that only shares its words ("If the wipers remain
ineffective after cleaning, replace the wiper blades."): it gains ``means_bonus``.

A unit's score adds its embedding similarity to the question, the share of the question's IDF
weight that its words and its passage's headings cover (an owner's words for a measure read as
the manual's: "how long is the car" asks for its length, "3 min" for minutes; a word run
together, "seatbelt", found where the manual writes two, "seat belt"; an owner's everyday word
for a part, "blinker", "frunk", "headrests", found where the manual writes its name, "turn
signal", ``chat.owner_words``), its passage's retrieval
similarity (an owner's initials, "FSD", read as the manual's name for them), and, for a
question asking for an amount ("how long", "what psi"), a bonus when it holds a number, and
another when the number is in a unit of what is asked ("what temp": degrees;
``chat.asking.amount_units``) or counts what is asked ("how many devices can HomeLink
control": "up to three Radio Frequency (RF) devices", not the phone number beside the three
transmit modes; ``chat.asking.counted``). Spans are built around the best few units and
scored again as a whole; a second span from elsewhere joins when it scores nearly as well
and covers question terms the first does not. The settings and the figures they were chosen
on are in :class:`QuoteSettings`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from chat.aims import aim_of, done_aim, opposite_aim
from chat.asking import (
    PHONE_NUMBER,
    USING,
    amount_units,
    asked_terms,
    asks_for_a_figure_alone,
    asks_for_meaning,
    asks_for_means,
    asks_for_phone_number,
    asks_for_procedure,
    asks_for_quantity,
    asks_for_setting,
    condition_terms,
    counted,
    failed_actions,
    label_pattern,
    label_phrases,
    named_codes,
    signal_counts,
    signalled_counts,
    states_absence,
    states_failure,
)
from chat.car_ends import other_end
from chat.labels import below_best, label_shares, named_items
from chat.owner_words import owner_words
from chat.pointers import (
    address_to_read,
    asks_where_to_read,
    follow_pointers,
    is_pointer,
    names_a_setting,
)
from chat.quote_settings import QuoteSettings
from chat.spans import (
    Scored,
    Span,
    into_procedure,
    is_procedure,
    render,
    run_on,
    spans_around,
    with_steps,
    without_leading_pointer,
)
from chat.stemming import stem
from chat.text_units import (
    CALLOUT_LINE,
    Block,
    Unit,
    Vocabulary,
    is_footnote,
    passage_blocks,
    split_sentences,
    term_set,
    weighted_coverage,
    words,
)
from chat.verification import NUMBER_WORDS, amount_units_given, numbers_with_units

__all__ = ["Quote", "QuotePassage", "QuoteSettings", "compose_quote", "unit_texts"]

Embed = Callable[[list[str]], np.ndarray]

_NUMBER: Final = re.compile(r"\d")
# A count, in digits or words ("up to three RF devices"); not "one", mostly a pronoun.
_COUNT_WORDS: Final = frozenset(NUMBER_WORDS) - {"zero", "one"}


@dataclass(frozen=True)
class QuotePassage:
    """A retrieved passage as the composer reads it: its citation ``number``, where it is
    (``heading_path``), its markdown ``body`` and its retrieval ``similarity``."""

    number: int
    heading_path: str
    body: str
    similarity: float


@dataclass(frozen=True)
class Quote:
    """The composed quote: ``text`` (markdown), the citation ``numbers`` it comes from (the
    first is its main passage), its length in ``words``, the share of the question's IDF
    weight it covers (``coverage``, headings of its passages included), its best unit's
    ``score``, and ``parts``: ``{"n", "text"}`` per span."""

    text: str
    numbers: list[int]
    words: int
    coverage: float
    score: float
    parts: list[dict] = field(default_factory=list)

    @property
    def fit(self) -> float:
        """How well it answers its question: ``score`` plus ``coverage``
        (``chat.declines.off_the_point``)."""
        return self.score + self.coverage


def compose_quote(
    question: str,
    passages: Sequence[QuotePassage],
    *,
    embed: Embed,
    vocabulary: Vocabulary,
    settings: QuoteSettings | None = None,
) -> Quote | None:
    """The quote that best answers ``question`` from ``passages`` (best first), or None when
    they hold no quotable text."""
    settings = settings or QuoteSettings()
    parsed = [passage_blocks(passage.body) for passage in passages]
    units = [
        (index, unit)
        for index, blocks in enumerate(parsed)
        for block in blocks
        for unit in _scorable(block)
    ]
    if not units:
        return None
    question_terms = asked_terms(vocabulary.spell_out(question))
    aliases = owner_words(question, vocabulary)
    wants_number = asks_for_quantity(question)
    wants_units = amount_units(question)
    counts = _counts(counted(question))
    wants_steps = asks_for_procedure(question)
    figure_alone = asks_for_a_figure_alone(question)
    wants_setting = asks_for_setting(question)
    wants_means = asks_for_means(question)
    wants_phone = asks_for_phone_number(question)
    wants_address = asks_where_to_read(question)
    phrases, codes = label_phrases(question), named_codes(question)
    named_row = _finds(label_pattern(phrases) if phrases else None)
    named_code = _finds("|".join(codes) if codes else None)
    signals = signal_counts(question)
    vectors = embed(
        [question, *[_embedded(unit, passages[index].heading_path) for index, unit in units]]
    )
    question_vector = vectors[0]
    heading_terms = [term_set(passage.heading_path) for passage in passages]
    other_side = other_end(question, [passage.heading_path for passage in passages])
    undoes = opposite_aim(question)
    again = done_aim(question)
    condition = condition_terms(question)
    failed = failed_actions(question)

    asks_how = wants_steps or wants_setting

    def same_aim(unit: Unit) -> bool:  # "To open the glovebox, ..." for "how do i open it"
        aim = aim_of(unit.plain) if asks_how else None
        return aim is not None and (
            weighted_coverage(question_terms, term_set(aim), vocabulary, aliases)
            >= settings.aim_coverage
        )

    def undoing(unit: Unit) -> bool:  # a procedure's step that undoes it is still its step
        return unit.kind not in ("step", "substep") and undoes(unit.plain)

    def relevance(similarity: float, text: str, passage: int) -> tuple[float, float]:
        coverage = weighted_coverage(
            question_terms, heading_terms[passage] | term_set(text), vocabulary, aliases
        )
        # a figure, in digits or words ("the most recent ten minutes"), not a step's number
        bonus = settings.number_bonus if wants_number and numbers_with_units(text) else 0.0
        # "what is the range" asks for a distance; "19-inch wheels" gives none
        # ("how many devices": "up to three RF devices" counts them)
        if (wants_units and wants_units & amount_units_given(text)) or counts(text):
            bonus += settings.unit_bonus
        if wants_means and USING.search(text):  # "what can i clean the blades with"
            bonus += settings.means_bonus
        if (wants_phone and PHONE_NUMBER.search(text)) or (  # "whats the roadside number"
            wants_address and address_to_read(text)  # "where are the instructions"
        ):
            bonus += settings.unit_bonus
        score = (
            settings.semantic_weight * similarity
            + settings.term_weight * coverage
            + settings.passage_weight * passages[passage].similarity
            + bonus
        )
        return score, coverage

    # A label is named by the manual's name for the owner's word too ("blinking orange":
    # "AMBER - BLINKING").
    named_terms = set(question_terms).union(*(name for _, name in aliases))
    shares = label_shares(
        parsed,
        named_terms,
        vocabulary,
        label_words=settings.label_words,
        labelled=settings.labelled,
    )
    mismatch = below_best(shares)
    meaning = asks_for_meaning(question) and not wants_number
    named_item = named_items(parsed, shares) if meaning else set()
    scored = [
        Scored(
            passage=index,
            unit=unit,
            score=relevance(float(similarity), unit.plain, index)[0]
            - settings.label_weight * mismatch.get((index, unit.block, unit.index), 0.0)
            - (settings.pointer_penalty if is_pointer(unit.plain) else 0.0)
            - (settings.footnote_penalty if is_footnote(unit.text) else 0.0)
            - (settings.side_penalty if other_side(index, unit.plain) else 0.0)
            - (settings.aim_penalty if undoes(unit.plain) or again(unit.plain) else 0.0)
            + (settings.named_row_bonus if unit.kind == "row" and named_row(unit.text) else 0.0)
            + (settings.named_row_bonus if (index, unit.block, unit.index) in named_item else 0.0)
            + (settings.code_bonus if named_code(unit.plain) else 0.0)
            + (settings.aim_bonus if same_aim(unit) else 0.0)
            + (settings.code_bonus if signals & signalled_counts(unit.plain) else 0.0),
        )
        for (index, unit), similarity in zip(units, vectors[1:] @ question_vector, strict=True)
    ]
    scored.sort(key=lambda item: -item.score)
    referred = follow_pointers(
        scored,
        [passage.heading_path for passage in passages],
        anchors=settings.anchors,
        gain=settings.pointer_penalty,
    )
    if referred:
        scored.sort(key=lambda item: -item.score)
    unit_scores = {(item.passage, item.unit.block, item.unit.index): item.score for item in scored}

    spans: dict[tuple, Span] = {}
    anchors = scored[: settings.anchors]
    if wants_address:  # "where are the instructions": each address to read them at
        anchors += [item for item in scored[settings.anchors :] if address_to_read(item.unit.plain)]
    for item in anchors:
        for span in spans_around(
            item, parsed[item.passage], unit_scores, settings, figure_alone=figure_alone
        ):
            span.text = render(span, parsed[span.passage], settings)
            span.words = len(span.text.split())
            spans.setdefault(span.key, span)
    pool = list(spans.values())
    span_vectors = embed(
        [_span_embedded(span, parsed[span.passage], passages[span.passage]) for span in pool]
    )
    for span, similarity in zip(pool, span_vectors @ question_vector, strict=True):
        whole, span.coverage = relevance(float(similarity), span.text, span.passage)
        whole -= settings.label_weight * _span_mismatch(span, mismatch)
        if _every_unit(span, parsed[span.passage], _is_pointer_unit):
            whole -= settings.pointer_penalty
        elif span.passage in referred:
            whole += settings.pointer_penalty
        span.score = span.anchor_score + settings.span_weight * whole
        if wants_steps and any(
            is_procedure(parsed[span.passage][piece.block]) for piece in span.pieces
        ):
            span.score += settings.procedure_bonus
        if (wants_setting or wants_steps) and names_a_setting(span.text):
            span.score += settings.setting_bonus
        if states_absence(span.text, condition):
            span.score += settings.condition_bonus
        if states_failure(span.text, failed):  # "doesnt lock": "does not automatically lock if"
            span.score += settings.failure_bonus
        if wants_steps:
            span.score -= settings.caveat_penalty * _share(span, parsed[span.passage], _is_callout)
        span.score -= settings.aim_penalty * _share(
            span, parsed[span.passage], lambda _, unit: undoing(unit)
        )
        if again(span.text):  # a procedure for what the owner says is done already
            span.score -= settings.aim_penalty
    # A number to call is answered by a number: a span that gives none comes after those that
    # do, however close it reads ("whats the roadside number": not "Roadside Assistance is
    # available to you 24 hours a day"); where to read how is answered by a web address.
    pool.sort(
        key=lambda span: (
            wants_phone and not PHONE_NUMBER.search(span.text),
            wants_address and not address_to_read(span.text),
            -span.score,
        )
    )
    best = without_leading_pointer(
        run_on(pool[0], parsed[pool[0].passage], settings), parsed[pool[0].passage], settings
    )
    if wants_steps and not (wants_address and address_to_read(best.text)):
        stepped = into_procedure(best, parsed[best.passage], settings)
        prose = all(parsed[best.passage][piece.block].kind == "paragraph" for piece in best.pieces)
        if stepped is best and prose:  # no steps follow it in its passage
            others = [span for span in pool[1:] if not again(span.text)]
            asked = named_terms | term_set(question)
            stepped = with_steps(others, parsed, settings, pool[0].score, asked) or best
        best = stepped
    if best is not pool[0]:  # grown: it may cover more of the question
        best.coverage = _coverage([best], passages, question_terms, vocabulary, aliases)

    chosen = [best]
    for span in pool[1:]:
        if span.score < settings.second_ratio * best.score:
            break
        if span.passage == best.passage and set(span.pieces) & set(best.pieces):
            continue
        if _repeats(span.text, best.text):
            continue  # overlapping chunks hold the same sentences
        if figure_alone and _NUMBER.search(best.text) and _NUMBER.search(span.text):
            continue  # a second figure for another thing ("torque spec for the mud flap bolt":
            # not the lug nuts' 129 lb. ft under the bolt's 5 Nm)
        if best.words + span.words > settings.word_budget:
            continue
        covered = _coverage([best, span], passages, question_terms, vocabulary, aliases)
        if covered - best.coverage < settings.second_gain:
            continue
        chosen.append(span)
        break

    text = "\n\n".join(span.text for span in chosen)
    return Quote(
        text=text,
        numbers=list(dict.fromkeys(passages[span.passage].number for span in chosen)),
        words=len(text.split()),
        coverage=round(_coverage(chosen, passages, question_terms, vocabulary, aliases), 4),
        score=round(best.score, 4),
        parts=[{"n": passages[span.passage].number, "text": span.text} for span in chosen],
    )


def unit_texts(body: str, heading_path: str) -> list[str]:
    """The texts of a passage with this ``body`` and ``heading_path`` that
    :func:`compose_quote` embeds, one per unit it scores: what ``chat.quote_vectors`` stores
    ahead of the questions."""
    return [
        _embedded(unit, heading_path) for block in passage_blocks(body) for unit in _scorable(block)
    ]


def _embedded(unit: Unit, heading_path: str) -> str:
    """The text a unit's embedding is computed on: its plain text, a table row's after the
    title of its section ("Recommended tire pressures: Wheel: 18-inch Aero wheel; ...; Front
    (cold): 290 kPa (42 PSI)"). A row names its columns, not what the table is of: "what tire
    pressure should I use" read closer to a Note below the table ("Tire pressure changes by
    about 7 kPa (1 PSI) for every 6 degrees C ...") than to the table's rows."""
    return _after_section(unit.plain, heading_path) if unit.kind == "row" else unit.plain


def _after_section(text: str, heading_path: str) -> str:
    """``text`` (a table's, or a row's) after the title of its section, unless it starts with
    it already (a row whose first column is named for the section: "Steering: ...")."""
    section = heading_path.rsplit(">", 1)[-1].strip()
    if not section or text.lower().startswith(section.lower()):
        return text
    return f"{section}: {text}"


def _finds(pattern: str | None) -> Callable[[str], bool]:
    """Whether a text holds ``pattern`` (in any case); never without one. Used for a table row
    with a cell that starts with words the question writes together (``chat.asking.
    label_pattern``: "turning circle" names "|Turning Circle (curb to curb)|38 ft (11.6 m)|"),
    and for a unit that holds a code the question gives (``chat.asking.named_codes``: "red
    BRK-040 came up", the alert "BRK-040 - Brake fluid level low (red)")."""
    if not pattern:
        return lambda text: False
    compiled = re.compile(pattern, re.IGNORECASE)
    return lambda text: bool(compiled.search(text))


def _counts(counted_stems: frozenset[str]) -> Callable[[str], bool]:
    """Whether a text gives a count of what the question counts (``chat.asking.counted``): a
    number with a word naming it at most four words after it ("up to three Radio Frequency
    (RF) devices" for "how many devices"); never when the question counts nothing."""
    if not counted_stems:
        return lambda text: False

    def gives(text: str) -> bool:
        tokens = words(text)
        return any(
            (token.isdigit() or token in _COUNT_WORDS)
            and counted_stems & {stem(word) for word in tokens[i + 1 : i + 5]}
            for i, token in enumerate(tokens)
        )

    return gives


def _span_mismatch(span: Span, mismatch: dict[tuple[int, int, int], float]) -> float:
    """The label mismatch of the best-named row or item ``span`` quotes (0 without one)."""
    found = [
        mismatch[(span.passage, piece.block, unit)]
        for piece in span.pieces
        for unit in piece.units
        if (span.passage, piece.block, unit) in mismatch
    ]
    return min(found, default=0.0)


def _every_unit(span: Span, blocks: list[Block], test: Callable[[Unit], bool]) -> bool:
    """Whether every unit ``span`` quotes passes ``test`` (a lead-in aside)."""
    return all(
        test(blocks[piece.block].units[unit])
        for piece in span.pieces
        for unit in piece.units
        if unit >= 0
    )


def _share(span: Span, blocks: list[Block], test: Callable[[Block, Unit], bool]) -> float:
    """The share of the words of the units ``span`` quotes that are in units passing
    ``test`` (of the unit's block and the unit)."""
    quoted = [
        (blocks[piece.block], blocks[piece.block].units[index])
        for piece in span.pieces
        for index in piece.units
        if index >= 0
    ]
    words = [len(unit.plain.split()) for _, unit in quoted]
    passing = sum(
        count for (block, unit), count in zip(quoted, words, strict=True) if test(block, unit)
    )
    return passing / sum(words) if sum(words) else 0.0


def _is_pointer_unit(unit: Unit) -> bool:
    """Whether ``unit`` only sends the reader elsewhere (``chat.pointers.is_pointer``)."""
    return is_pointer(unit.plain)


def _is_callout(block: Block, unit: Unit) -> bool:
    """Whether ``unit`` is a Note, Caution or Warning, or an item of a list one introduces
    ("CAUTION: To prevent damage:" and its "- Do not close the hood with one hand." were quoted
    for "whats the right way to shut the frunk", not the steps that close it)."""
    return unit.kind == "callout" or bool(CALLOUT_LINE.match(block.lead_in))


def _scorable(block: Block) -> list[Unit]:
    """The units of ``block`` to score, the sentence that introduces a list included (as
    index -1: choosing it quotes the list)."""
    units = list(block.units)
    if block.lead_in and units:
        lead_in = Unit(
            kind="lead_in", text=block.lead_in, plain=block.lead_in, block=units[0].block, index=-1
        )
        units.insert(0, lead_in)
    return units


def _repeats(text: str, other: str) -> bool:
    """Whether ``text`` repeats a line or sentence of ``other``."""
    seen = {" ".join(sentence.split()).lower() for sentence in split_sentences(other)}
    return any(" ".join(s.split()).lower() in seen for s in split_sentences(text))


def _plain_text(text: str) -> str:
    return re.sub(r"[*_`|]+", " ", text)


def _span_embedded(span: Span, blocks: list[Block], passage: QuotePassage) -> str:
    """The text a span's embedding is computed on: its plain text, a table's after the title of
    its section, as its rows are (:func:`_embedded`): a table names its columns, not what it
    is of, and "whats the recommended tire pressure" read closer to the Note beside it."""
    text = _plain_text(span.text)
    if blocks[span.pieces[0].block].kind != "table":
        return text
    return _after_section(text, passage.heading_path)


def _coverage(
    chosen: list[Span],
    passages: Sequence[QuotePassage],
    question_terms: list[str],
    vocabulary: Vocabulary,
    aliases: list[tuple[frozenset, frozenset]],
) -> float:
    covered: set[str] = set()
    for span in chosen:
        covered.update(term_set(span.text))
        covered.update(term_set(passages[span.passage].heading_path))
    return weighted_coverage(question_terms, covered, vocabulary, aliases)
