"""Quality gates: the flags a pair gets when it is created, and its grounding in the source."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Final

from manualqa.lib.refusals import admits_gap

# --------------------------------------------------------------------------------------------
# Quality gates
# --------------------------------------------------------------------------------------------

FLAG_NOT_A_QUESTION: Final = "not_a_question"
FLAG_TOO_SHORT: Final = "too_short"
FLAG_TOO_LONG: Final = "too_long"
FLAG_EMPTY_ANSWER: Final = "empty_answer"
FLAG_REFUSAL: Final = "refusal"
FLAG_DUPLICATE: Final = "duplicate"
FLAG_SOURCE_CHANGED: Final = "source_changed"
FLAG_LOW_GROUNDING: Final = "low_grounding"
# Every flag, in the order a review page lists them. duplicate and source_changed are set by
# the services (they need the database); the others come from the functions below.
QUALITY_FLAGS: Final = (
    FLAG_NOT_A_QUESTION,
    FLAG_TOO_SHORT,
    FLAG_TOO_LONG,
    FLAG_EMPTY_ANSWER,
    FLAG_REFUSAL,
    FLAG_DUPLICATE,
    FLAG_SOURCE_CHANGED,
    FLAG_LOW_GROUNDING,
)

QUESTION_MIN_WORDS: Final = 4
QUESTION_MAX_WORDS: Final = 40
ANSWER_MIN_WORDS: Final = 2

# Words a question or a request for information starts with, so "Explain how to open the
# frunk" passes without a "?" while "The charge port opens with a press" does not.
_QUESTION_STARTERS: Final = frozenset(
    """what how why when where which who whom whose can could does do did is are was were will
    would should shall may might must has have had explain describe list name tell give define
    outline summarize summarise identify compare show""".split()  # noqa: SIM905 (reads as prose)
)
_WORD_RE: Final = re.compile(r"\w+")


def _word_count(text: str) -> int:
    # Whitespace-separated words that hold a letter or digit: "What's PCS_a016?" is 2 words,
    # and a lone "-" or "?" is none.
    return sum(1 for word in text.split() if _WORD_RE.search(word))


def question_flags(question: str) -> list[str]:
    """Quality flags for a generated question (an empty list when it looks fine).

    * ``not_a_question``: it neither ends with "?" nor starts with a question or request word
      (what, how, can, does, explain, describe...): usually a statement the model listed by
      mistake, or a heading.
    * ``too_short``: under 4 words; "What is TPMS?" is fine, "Charging?" says too little to be
      answered without the page in front of you.
    * ``too_long``: over 40 words; such "questions" are usually several questions, or a
      question with its answer pasted in.
    """
    flags = []
    stripped = question.strip()
    first_word = _WORD_RE.search(stripped.lower())
    if not stripped.endswith("?") and (
        first_word is None or first_word.group() not in _QUESTION_STARTERS
    ):
        flags.append(FLAG_NOT_A_QUESTION)
    words = _word_count(stripped)
    if words < QUESTION_MIN_WORDS:
        flags.append(FLAG_TOO_SHORT)
    elif words > QUESTION_MAX_WORDS:
        flags.append(FLAG_TOO_LONG)
    return flags


def answer_flags(answer: str) -> list[str]:
    """Quality flags for a generated answer (an empty list when it looks fine).

    * ``empty_answer``: blank, or a single word ("Yes.", "N/A"): nothing a reviewer could
      approve as an answer from the manual.
    * ``refusal``: the answer says the source does not answer ("The text does not mention...",
      "not mentioned in the provided text", "I don't know", "cannot answer", "no
      information"...). A partial answer that admits a gap is flagged too: the reviewer
      decides whether the rest is worth keeping.
    """
    flags = []
    if _word_count(answer) < ANSWER_MIN_WORDS:
        flags.append(FLAG_EMPTY_ANSWER)
    if admits_gap(answer):
        flags.append(FLAG_REFUSAL)
    return flags


# Function words carry no evidence that an answer came from the source: every English text
# has them. The list is small on purpose (long lists go on to remove words such as "first",
# "left" or "before" that carry meaning in a manual). Numbers are never stopwords: "3 seconds"
# is content.
STOPWORDS: Final = frozenset(
    """a an the and or but if then else so than too very of to in on at by for with from into
    onto over under about as up out off is are was were be been being am it its itself this
    that these those there here which who whom whose what when where why how i me my we our us
    you your yours he him his she her they them their not no nor can could will would shall
    should may might must do does did doing done have has had having also just only any all
    each both some such more most other own same s t d ll m re ve don doesn didn isn aren
    wasn weren won wouldn shouldn couldn""".split()  # noqa: SIM905 - as above
)


def _content_words(text: str) -> set[str]:
    words = _WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())
    return {word for word in words if word not in STOPWORDS}


def lexical_grounding(answer: str, source: str) -> float:
    """Share of the answer's distinct content words that occur in the source text (0.0-1.0).

    Words are lower-cased ``\\w+`` tokens; a small English stopword list is removed, numbers
    are kept (a "30 seconds" the source never says is exactly what this should catch). Each
    distinct word counts once, so repeating a grounded word does not raise the score. An
    answer copied from the source scores 1.0; one with no content words scores 0.0, because
    it offers no evidence of coming from the source.

    This is cheap evidence that an answer is drawn from its chunk rather than from the model's
    general knowledge; it cannot tell a faithful paraphrase from a wrong one, which is what
    the semantic half of ``grounding_score`` and the reviewer are for.
    """
    answer_words = _content_words(answer)
    if not answer_words:
        return 0.0
    source_words = _content_words(source)
    return len(answer_words & source_words) / len(answer_words)


# all-MiniLM-L6-v2 (the default embedding model) gives about 0.2 cosine between unrelated
# English texts about the same product and 0.8-0.9 between a passage and a close paraphrase;
# on the Model 3 pairs an answer scored a median 0.23 against the best chunk of a random other
# page and 0.80 against the best chunk of its own source. That band is stretched onto 0..1
# before it is averaged with the lexical score.
_SEMANTIC_FLOOR: Final = 0.2
_SEMANTIC_SPAN: Final = 0.6


def grounding_score(*, lexical: float, semantic: float | None) -> float:
    """One 0..1 number for how well an answer is supported by its chunk.

    ``lexical`` is ``lexical_grounding``; ``semantic`` is the cosine similarity between the
    answer's and the chunk's embeddings, or None where no embedding is available (then the
    lexical score is returned as is). The two fail in opposite ways, which is why they are
    averaged with equal weight: word overlap misses a faithful paraphrase, while an embedding
    rates an answer that talks about the right topic highly even when it invents the numbers.
    The cosine is first mapped from its useful band (≈0.2 unrelated .. ≈0.8 and above, the
    same content) onto 0..1 and clamped, so the two halves share a scale.
    """
    if math.isnan(lexical) or not 0.0 <= lexical <= 1.0:
        raise ValueError(f"lexical must be between 0 and 1, got {lexical}")
    if semantic is None:
        return lexical
    if math.isnan(semantic):
        raise ValueError("semantic must be a number, got NaN")
    scaled = min(1.0, max(0.0, (semantic - _SEMANTIC_FLOOR) / _SEMANTIC_SPAN))
    return 0.5 * lexical + 0.5 * scaled


# A pair whose grounding_score is below this gets FLAG_LOW_GROUNDING. Measured on the 2,078
# GPT-3.5 pairs of the Model 3 manual, each answer scored against the page (or the "##"
# section) it was generated from, and, as a stand-in for an answer that is not from its
# source, against a random other page (tests/curation/test_qa.py checks these numbers hold):
#   lexical, own source:   median 0.76, 5th percentile 0.44, 1st 0.29; 41 pairs (2.0%) < 0.35
#   lexical, random page:  median 0.18, 95th percentile 0.48; 84% < 0.35
#   combined with all-MiniLM-L6-v2 (cosine with the best chunk of the source; own median 0.80,
#   random median 0.23): own source 13 pairs (0.6%) < 0.35, random page 88% < 0.35
# The own-source pairs under 0.35 are nearly all answers padded with the model's guesses
# ("the installation guide likely contains detailed maintenance guidelines...") or "ERROR",
# exactly what a reviewer should look at; between 0.35 and 0.45 good paraphrases start to
# appear (0.45 would flag 108 pairs, mostly fine). Going lower than 0.35 lets through a
# growing share of the off-source answers (0.25 catches only 67% of them lexically).
LOW_GROUNDING_THRESHOLD: Final = 0.35
