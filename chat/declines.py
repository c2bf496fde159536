"""Deciding that the manual does not answer a question, beyond "nothing retrieved is close".

Plain Python (no Django). Retrieval's confidence (the best passage's cosine similarity) only
says whether the manual talks about the same *topic*: questions about insurance, resale value,
prices or another model's towing score as high as many the manual answers. Three more checks
look at what the question asks for, each cheap and explainable:

* **key terms the manual never uses.** The question's content words (casual words and
  numbers describing the owner's situation set aside) are weighted by IDF over the manual's
  chunks; when too much of that weight falls on words the manual never uses ("resale",
  "CarPlay", "horsepower", "Cybertruck"), the manual does not cover what is asked.
  :func:`key_term_coverage` is the share it does use; an assistant declines below its
  ``min_coverage``, but only when those words carry the question's meaning: an owner's own
  words for the situation ("totally busted", "the charging flap", "my wife and kids") are
  unknown to the manual too. Their weight in meaning is how far the question's embedding
  moves when they are left out (:func:`meaning_shift`); below :data:`MIN_MEANING_SHIFT` they
  are the owner's phrasing, not the subject. Initials that stand for a name the manual uses
  ("FSD", "TACC") are read as that name (``Vocabulary.spell_out``), not as unknown words,
  and so is an owner's everyday word for a part the manual names otherwise ("blinker": "turn
  signal"; ``chat.owner_words``), and so is a word for what is measured when the
  passages give a figure in its unit ("what is the cargo volume": "520 L").
* **another product.** A question that names a product designation the manual never does
  ("how much can a Model Y tow", in the Model 3's manual; ``chat.text_units.designations``)
  asks about another product, however close its words are to the manual's.
* **a thing the manual never names.** A question whether something exists or is supported
  ("is there a home screen widget for the app", "is there an official owners club i can
  join") asks about the noun phrase after it; when the manual never names its last word
  (:func:`absent_subject`), it cannot say there is one, however many of the question's other
  words it uses (the key-term share above stays high: "widget" is one word of eight).
* **a code the manual does not give.** A question that names codes ("what is BAT-020"), none
  of which a manual listing codes gives, asks about an entry it does not have: the nearest
  entry is another code's ("BAT-102 - Low battery"), and quoted, it read as the answer.
* **a maker's plans.** No owner's manual speaks of models to come or of when to buy ("is
  Tesla going to release a refreshed Model 3", "should I wait to buy"): such a question is
  declined whatever the passages.
* **a loan car.** Nor does it say whether the seller lends a car while the owner's is
  serviced ("does tesla give you a loaner car").
* **a price.** An owner's manual states no prices: a question asking what something costs
  ("how much does ... cost", "price", "fee", "worth", "charge per kWh") is declined unless the
  passages hold an amount of money.
* **a unit.** A question asking for an amount in a unit ("in inches", "how many kWh", "how much
  horsepower") is declined when the passages hold no number in that unit; and, once the quote
  is composed (:func:`missing_amount`), a question asking for an amount of something ("what's
  the 0-60 time", "what tint percentage", "what amp rating") when the quote holds no number
  in a unit of it, or in the unit the question names ("how many years"), or it gives a rate
  over another period than the one asked ("lose per year": "1% per day"): the passages it
  would show talk around the question.
* **a quote off the point.** Once composed, a quote that shares few of the question's key
  words and reads little like it (:func:`off_the_point`: the two together) answers something
  else.

Each threshold's comment below gives the figures it was set on; bench/answers.py measures them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np

from chat.asking import (
    RANGE_ENDS,
    amount_units,
    asked_part,
    key_terms,
    named_units,
    rate_periods,
)
from chat.names import codes, designations
from chat.owner_words import owner_words
from chat.text_units import MEASURE_NOUNS, Vocabulary, terms, words
from chat.verification import amount_units_given

Embed = Callable[[list[str]], "np.ndarray"]

__all__ = [
    "DEFAULT_MIN_COVERAGE",
    "MIN_MEANING_SHIFT",
    "QUOTE_MIN_FIT",
    "Decline",
    "absent_subject",
    "asks_for_price",
    "decline_reason",
    "key_term_coverage",
    "meaning_shift",
    "missing_amount",
    "off_the_point",
    "other_codes",
    "other_products",
    "question_parts",
]

#: Decline when the manual's words cover less than this share of a question's key-term
#: weight (and the words it lacks move the question's meaning by MIN_MEANING_SHIFT). Set on
#: the development sets (bench/questions/*-dev.jsonl, 85 answerable and 55 unanswerable
#: questions): 0.45 with a 0.12 shift declines 33 of the 55 and 2 of the 85; 0.5 declines as
#: many with 3 false refusals, 0.4 three fewer; without the shift gate 0.45 refuses 4. The
#: held-out figures are in bench/answers.py's output and the README.
DEFAULT_MIN_COVERAGE: Final = 0.45
#: 1 - cosine between the question and the question without its unknown words (all-MiniLM-L6).
MIN_MEANING_SHIFT: Final = 0.12
#: A composed quote whose fit to the question, its ``score`` (``chat.quoting``: its best unit's
#: score plus 1.2 times the whole span's, how much it reads like the question) plus its
#: ``coverage`` (the share of the question's key-term weight it holds, headings included), is
#: under this talks around the question: "whats the screen size on the main display" quoted
#: the dimensions table, "does the model 3 do apple carplay" a note on third-party apps, "how
#: do i reset face id on my iphone" the car's factory reset. Neither alone separates: a right
#: quote may hold few of the owner's words and read like the question, or hold more of them
#: and read less like it. What the sum misses: a quote that reads much like the question
#: without its subject ("the max weight on the roof rack crossbars": the trunk's load limits,
#: 1.69). Set on the development sets (quoted answers; 85 answerable, 55 unanswerable
#: questions): the unanswerable ones that reach a quote lie at 0.94-1.18 but for two (a loaner
#: car 1.26, the curb weight 1.51), the answerable ones answered right from 1.29 up (between,
#: 1.23 and 1.24, two answered wrongly); 1.2 is in the middle of that gap and declines 11 of
#: the 55 here instead of 5 (50 of 55 declined in all, 45 before), and 2 more of the 85
#: answerable ones, both answered wrongly before (must-include 0); declining the two in the gap
#: as well would take false refusals past 5%. The blind set: 11 of 12 declined instead of 9, no
#: answerable one. The held-out set: its 12 were declined already; 2 more of its 84 answerable
#: ones are, and must-include falls 0.810 -> 0.786. Before, the rule was two thresholds
#: (coverage under 0.1 and score under 1.1).
QUOTE_MIN_FIT: Final = 1.2

# Words that name what is measured ("the cargo volume", "the curb weight"): the nouns a
# "how wide" asks for (``chat.text_units.MEASURE_NOUNS``), and more.
_MEASURED: Final = {
    *MEASURE_NOUNS.values(),
    *("volume", "length", "capacity", "dimension", "temperature", "pressure"),
    *RANGE_ENDS,  # the end of a range asked for ("what's the coldest": "from 16 °C")
}
_MEASURE_WORD: Final = re.compile(rf"(?:{'|'.join(sorted(_MEASURED))})s?", re.IGNORECASE)
# Where one part of a question ends and the next begins.
_PART_END: Final = re.compile(r"(?<=\?)\s+")

_PRICE_WORDS: Final = re.compile(
    r"\b(?:cost|costs|costing|price|prices|pricing|priced|fee|fees|pay|paid|cheaper|cheapest|"
    r"expensive|worth|dollars?|insurance|insure|resale|trade-?in|tax\s+credits?|subscriptions?|"
    r"per\s+month|monthly)\b|\$|\bcharge\s+(?:for|to\s+(?:replace|install|fix|repair))\b|"
    r"\bcharge\s+per\s+kwh\b|"
    # what a seller charges ("how much does tesla charge to put the coating on")
    r"\b(?:tesla|they|dealers?|dealerships?|service(?:\s+cent(?:er|re)s?)?|shops?)\s+"
    r"charges?\s+(?:you\s+|me\s+|us\s+)?(?:for|to)\b",
    re.IGNORECASE,
)
_ASKS_AMOUNT: Final = re.compile(
    r"\bhow\s+much\b|\bwhat\s+(?:does|do|would|will|did)\b.{0,40}\b(?:cost|charge)\b|"
    # "what's the price", "whats tesla's price", "what is the dealer's fee"
    r"\bwhat(?:'s|s|\s+is|\s+are|\s+will)?\s+(?:the\s+|my\s+)?(?:[\w']+\s+)?"
    r"(?:price|cost|fee|value)s?\b|\bcheaper\b|"
    r"\bexpensive\b|\bworth\b|\bballpark\b|\broughly\b",
    re.IGNORECASE,
)
# "How much is a Tesla?", "how much is a new key fob": how much a thing is, its price (an
# amount of something is asked of it: "how much is the cargo volume").
_HOW_MUCH_IS_A: Final = re.compile(
    r"\bhow\s+much\s+(?:is|are|would\s+be)\s+(?:a|an)\s+(?:[\w-]+\s+){0,2}[\w-]+\s*[?.!]*\s*$",
    re.IGNORECASE,
)
# "..., and how much is it", "how much are they": what a thing the question names costs, when
# it speaks of buying it or asks no amount of something ("my range drops in the cold, how much
# is it"; "does tesla sell the spoiler for the long range, and how much is it" is a price).
_HOW_MUCH_IS_IT: Final = re.compile(
    r"\bhow\s+much\s+(?:is|are|would\s+(?:it|they)\s+be)(?:\s+(?:it|they|one|them))?\s*[?.!]*\s*$",
    re.IGNORECASE,
)
_BUYING: Final = re.compile(r"\b(?:sells?|selling|buy|buying|purchase|order)\b", re.IGNORECASE)
# A maker's plans or when to buy: what no owner's manual holds ("is Tesla going to release a
# refreshed Model 3 next year", "should I wait to buy").
_PLANS: Final = re.compile(
    r"\b(?:going\s+to|gonna|plan(?:s|ning)?\s+to|expected\s+to)\s+(?:release|launch|announce|"
    r"unveil|bring\s+out)\s+(?:a|an|the)?\s*(?:new|refreshed|redesigned|updated|next)\b|"
    r"\b(?:release|launch)\s+date\s+(?:of|for)\s+(?:the\s+)?(?:new|next)\b|"
    r"\bshould\s+i\s+(?:wait|hold\s+off)\s+(?:to\s+buy|before\s+buying|"
    r"for\s+(?:the\s+)?(?:new|next|refreshed|updated))\b|"
    r"\bnext\s+year'?s\s+model\b",
    re.IGNORECASE,
)
# A car to drive while the owner's is serviced: a seller's policy, which an owner's manual does
# not state ("does tesla give you a loaner car while yours is in the service center", "will they
# give me a rental car if it is in the shop"); the passages nearest it spoke of a car cover and
# of keeping a physical key. Declined unless the passages speak of such a car.
_LOAN_CAR: Final = re.compile(
    r"\b(?:loaner|rental|courtesy|loan)\s+(?:car|vehicle)s?\b|\brent\s+(?:me\s+)?a\s+car\b",
    re.IGNORECASE,
)
# The units' names as an owner reads them, for a decline's message ("no figure in years").
_UNIT_NAMES: Final = {
    "s": "seconds", "min": "minutes", "h": "hours", "day": "days", "week": "weeks",
    "month": "months", "year": "years", "mi": "miles", "m": "metres", "ft": "feet",
    "in": "inches", "lb": "pounds", "deg": "degrees", "%": "percent", "v": "volts",
    "hp": "horsepower", "a": "amps", "kw": "kW", "kwh": "kWh", "w": "watts", "l": "litres",
    "gb": "GB", "kpa": "kPa", "mb/s": "MB/s", "gal": "gallons", "db": "decibels",
    "nm": "Nm", "ftlb": "ft-lbs",
}  # fmt: skip
_MONEY: Final = re.compile(
    r"[$\u20ac\u00a3]\s?\d|\d\s?(?:dollars|usd|eur|euros?|gbp|pounds sterling)\b", re.IGNORECASE
)


@dataclass(frozen=True)
class Decline:
    """Why a question is declined: ``reason`` ("coverage", "product", "subject", "code",
    "plans", "policy", "price", "unit", or on the composed quote "amount" or "off_point") and
    what was measured, for the answer's record."""

    reason: str
    message: str
    detail: dict = field(default_factory=dict)


def key_term_coverage(
    question: str, vocabulary: Vocabulary, *, measured: bool = False
) -> tuple[float, list[str]]:
    """Share of the question's key-term IDF weight on words the manual uses (1.0 without key
    terms), and the key words it never uses, as the owner wrote them. ``measured``: the
    passages give a figure in a unit of the amount the question asks for, so the word that
    names what is measured ("what is the cargo volume": "Rear trunk: 520 L") is not one the
    manual lacks: manuals give the figure, and seldom the word."""
    question_terms = key_terms(question)
    total = sum(vocabulary.idf(term) for term in question_terms)
    named = _owners_words(question, vocabulary)
    unknown = [
        term
        for term in question_terms
        if term not in named
        and not vocabulary.known(term, prefix=True)
        and not (measured and _MEASURE_WORD.fullmatch(question_terms[term]))
    ]
    if total <= 0:
        return 1.0, [question_terms[term] for term in unknown]
    share = sum(vocabulary.idf(term) for term in unknown) / total
    return 1.0 - share, [question_terms[term] for term in unknown]


def _owners_words(question: str, vocabulary: Vocabulary) -> set[str]:
    """The terms of the question's everyday words for parts the manual names otherwise
    (``chat.owner_words``): words the manual does not use that still speak of what it does."""
    return set().union(*(owner for owner, _ in owner_words(question, vocabulary)))


def meaning_shift(question: str, left_out: Iterable[str], embed: Embed) -> float:
    """How far the question's meaning moves when the words ``left_out`` are dropped (in any
    case): 1 - cosine of the two embeddings (0 when nothing is left out)."""
    dropped = {word.lower() for word in left_out}
    if not dropped:
        return 0.0
    kept = " ".join(token for token in question.split() if not dropped & set(words(token))).strip()
    if not kept:
        return 1.0
    vectors = embed([question, kept])
    return 1.0 - float(vectors[0] @ vectors[1])


def other_products(question: str, vocabulary: Vocabulary) -> list[str]:
    """The product designations ``question`` names that the manual never does, as the owner
    wrote them ("Model Y"); none when the manual names none at all (nothing to compare with)."""
    if not vocabulary.designations:
        return []
    named = designations(question)
    return [written for name, written in named.items() if name not in vocabulary.designations]


# Makes of car an owner may name beside their own ("charge my neighbor's Ford Lightning off
# my wall connector", "tow a Honda"); not those that are also everyday words ("Seat", "Mini",
# "Ram", "Dodge", "Lucid", "Genesis").
_MAKES: Final = re.compile(
    r"\b(?:ford|chevy|chevrolet|gmc|cadillac|buick|jeep|chrysler|honda|acura|toyota|lexus|"
    r"nissan|infiniti|mazda|subaru|mitsubishi|hyundai|kia|bmw|audi|volkswagen|vw|porsche|"
    r"mercedes(?:-benz)?|volvo|polestar|rivian|tesla|jaguar|fiat|peugeot|renault|citroen|"
    r"skoda|byd)\b",
    re.IGNORECASE,
)


def other_makes(question: str, vocabulary: Vocabulary) -> list[str]:
    """The makes of car ``question`` names that the manual never does, as the owner wrote them
    ("Ford"): a manual speaks of its own make's cars, and says nothing of another's."""
    return list(
        dict.fromkeys(
            found.group(0)
            for found in _MAKES.finditer(question)
            if not all(vocabulary.known(term) for term in terms(found.group(0)))
        )
    )


# A question whether something exists or is supported ("is there a home screen widget for the
# app", "does it support wireless carplay", "does the car have a HUD"): what it asks about is
# the noun phrase after it, up to the first word that starts what the owner says of it.
_EXISTS: Final = re.compile(
    r"\b(?:is|are)\s+there\s+(?:an?|any|some)\s+(?P<there>[^?.,;!]+)|"
    r"\b(?:does|do|will|can)\s+(?:it|the\s+car|my\s+car|the\s+model\s*\w+|model\s*\w+|tesla|they)"
    r"\s+(?:have|support|come\s+with|offer|work\s+with)\s+(?:an?\s+|any\s+)?(?P<has>[^?.,;!]+)",
    re.IGNORECASE,
)
# Where the noun phrase ends: a preposition, a pronoun or a word that starts a clause.
_PHRASE_END: Final = frozenset(
    {
        *("for", "to", "so", "that", "which", "who", "in", "on", "at", "with", "from", "like"),
        *("i", "you", "we", "he", "she", "it", "they", "the", "my", "your", "our", "this"),
        *("when", "where", "if", "or", "and", "but", "because", "somewhere", "anywhere"),
        *("there", "here", "these", "those", "can", "could", "would", "should", "will", "is"),
        *("shows", "how", "what"),
    }
)


def absent_subject(question: str, vocabulary: Vocabulary) -> str | None:
    """What a question asking whether something exists or is supported asks about ("is there a
    home screen widget for the tesla app": "widget"), as the owner wrote it, when the manual
    never names it: the last word of the noun phrase it asks about, an owner's everyday word
    for a part the manual names (``chat.owner_words``) apart; else None. A manual that never
    names a thing cannot say there is one."""
    found = _EXISTS.search(question)
    if not found:
        return None
    phrase: list[str] = []
    for word in re.findall(r"[\w'-]+", found.group("there") or found.group("has")):
        if word.lower() in _PHRASE_END:
            break  # ("how many speakers does it have and how many watts ...": no phrase)
        phrase.append(word)
    head = next((word for word in reversed(phrase) if key_terms(word)), None)
    if head is None:
        return None
    head_terms = key_terms(head)
    if head_terms.keys() & _owners_words(question, vocabulary):
        return None
    if all(vocabulary.known(term, prefix=True) for term in head_terms):
        return None
    return head


def other_codes(question: str, vocabulary: Vocabulary) -> list[str]:
    """The codes ``question`` names ("BAT-020"), as the owner wrote them, when the manual gives
    none of them; none when it gives one (that one is answered), or no codes at all (nothing
    to compare with)."""
    named = codes(question)
    if not vocabulary.codes or named.keys() & vocabulary.codes:
        return []
    return list(named.values())


def asks_for_price(question: str) -> bool:
    """Whether the question asks what something costs (or is worth)."""
    if _HOW_MUCH_IS_A.search(question):
        return True
    if _HOW_MUCH_IS_IT.search(question) and (
        _BUYING.search(question) or not amount_units(question)
    ):
        return True
    return bool(_PRICE_WORDS.search(question) and _ASKS_AMOUNT.search(question))


def decline_reason(
    question: str,
    passage_texts: Iterable[str],
    vocabulary: Vocabulary,
    *,
    embed: Embed,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> Decline | None:
    """Why the manual does not answer ``question`` although retrieval found passages on its
    topic, or None (see the module docstring).

    A question in parts ("what does eco mode change? worth it for my commute?") is not declined
    when the manual answers its first part, the question the owner asked first: what follows
    is often a follow-on the quote cannot settle. Asked first, a question the manual does not
    answer declines the whole ("How much is my Aster worth? What would a dealer give me?").

    Words the manual never uses that only tell the owner's situation before the question asks
    (``chat.asking.asked_part``: "buddys battery died, can i jump his car off my model 3") do
    not decline it when what it asks is not declined (blind4 f-042 had been: "The manual never
    mentions “buddys”, “died”")."""
    passage_texts = list(passage_texts)

    def reason(text: str) -> Decline | None:
        return _decline_reason(
            text, passage_texts, vocabulary, embed=embed, min_coverage=min_coverage
        )

    def in_parts(text: str) -> Decline | None:
        decline = reason(text)
        if decline is None:
            return None
        parts = question_parts(text)
        return None if len(parts) > 1 and reason(parts[0]) is None else decline

    decline = in_parts(question)
    if decline is not None and decline.reason == "coverage":
        asked = asked_part(question)
        if asked != question and in_parts(asked) is None:
            return None
    return decline


def question_parts(question: str) -> list[str]:
    """The parts of a question asked in several ("what does eco mode change? worth it for my
    commute?"), split after each question mark; parts without a key term ("why??") join the
    part before them."""
    parts: list[str] = []
    for piece in _PART_END.split(question.strip()):
        if parts and not key_terms(piece):
            parts[-1] += f" {piece}"
        elif piece:
            parts.append(piece)
    return parts


def _decline_reason(
    question: str,
    passage_texts: list[str],
    vocabulary: Vocabulary,
    *,
    embed: Embed,
    min_coverage: float,
) -> Decline | None:
    passages = "\n".join(passage_texts)
    measured = bool(amount_units(question) & amount_units_given(passages))
    spelled_out = vocabulary.spell_out(question)  # "FSD": "Full Self-Driving"
    coverage, unknown = key_term_coverage(spelled_out, vocabulary, measured=measured)
    others = other_products(question, vocabulary) + other_makes(question, vocabulary)
    if others:
        return _never_mentions("product", others, coverage=round(coverage, 3), products=others)
    if _LOAN_CAR.search(question) and not _LOAN_CAR.search(passages):
        return Decline(
            reason="policy",
            message="The manual does not speak of a car to use while yours is serviced.",
            detail={"coverage": round(coverage, 3)},
        )
    if coverage < min_coverage:
        shift = meaning_shift(question, unknown, embed)
        if shift >= MIN_MEANING_SHIFT:
            return _never_mentions(
                "coverage",
                unknown[:4],
                coverage=round(coverage, 3),
                meaning_shift=round(shift, 3),
                unknown_terms=unknown,
            )
    subject = absent_subject(spelled_out, vocabulary)
    if subject:
        return _never_mentions("subject", [subject], coverage=round(coverage, 3))
    missing = other_codes(question, vocabulary)
    if missing:
        return _never_mentions("code", missing, coverage=round(coverage, 3), codes=missing)
    if _PLANS.search(question):
        return Decline(
            reason="plans",
            message="The manual does not speak of models to come or of when to buy.",
            detail={"coverage": round(coverage, 3)},
        )
    if asks_for_price(question) and not _MONEY.search(passages):
        return Decline(
            reason="price",
            message="The manual gives no prices.",
            detail={"coverage": round(coverage, 3)},
        )
    units = named_units(question)
    if units and not units & amount_units_given(passages):
        return Decline(
            reason="unit",
            message=f"The manual gives no figure in {_unit_names(units)}.",
            detail={"coverage": round(coverage, 3), "units": sorted(units)},
        )
    return None


def _never_mentions(reason: str, names: list[str], **detail) -> Decline:
    """A decline for what the question names and the manual never does."""
    return Decline(
        reason=reason,
        message="The manual never mentions " + ", ".join(f"“{name}”" for name in names) + ".",
        detail=detail,
    )


def _or(names: Iterable[str]) -> str:
    """``names`` as alternatives: "day or week"."""
    return " or ".join(sorted(names))


def _unit_names(units: Iterable[str]) -> str:
    """``units`` (the verification's unit names) as an owner reads them: "years", "hp or kW"."""
    return _or(_UNIT_NAMES.get(unit, unit) for unit in units)


def off_the_point(coverage: float, score: float) -> Decline | None:
    """Why a composed quote does not answer after all: its fit to the question, its ``score``
    (the composer's) plus its ``coverage`` (of the question's key-term weight, its passages'
    headings included), is under :data:`QUOTE_MIN_FIT`; else None."""
    if score + coverage >= QUOTE_MIN_FIT:
        return None
    return Decline(
        reason="off_point",
        message="The passage that comes closest speaks of something else.",
        detail={"quote_coverage": round(coverage, 4), "quote_score": round(score, 4)},
    )


def missing_amount(question: str, quote_text: str) -> Decline | None:
    """Why the quote composed for ``question`` does not answer it after all: the question asks
    for an amount of something (``chat.asking.amount_units``: "what's the 0-60 time", "what
    tint percentage") and the quote holds no number in a unit of it, or it names the unit
    it wants ("how many years", ``chat.asking.named_units``) and the quote holds no number in
    that unit ("how many years is the battery warranty": a storage note's "24 hours" and
    "140 degrees F" are figures of time, not of years), or it asks for a rate over a period
    and the quote gives rates over others only ("lose per year": "1% per day",
    ``chat.asking.rate_periods``); else None."""
    figures = amount_units_given(quote_text)
    named = named_units(question)
    if named and not named & figures:
        return Decline(
            reason="amount",
            message=f"The passage that comes closest gives no figure in {_unit_names(named)}.",
            detail={"units": sorted(named)},
        )
    asked, given = rate_periods(question), rate_periods(quote_text)
    if asked and given and not asked & given:
        return Decline(
            reason="amount",
            message=f"The passage that comes closest gives a rate per {_or(given)}, "
            f"not per {_or(asked)}.",
            detail={"periods": sorted(asked), "quote_periods": sorted(given)},
        )
    units = amount_units(question)
    if not units or units & figures:
        return None
    return Decline(
        reason="amount",
        message="The passage that comes closest gives no such figure.",
        detail={"units": sorted(units)},
    )
