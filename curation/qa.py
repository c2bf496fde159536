"""Question/answer pair generation helpers: prompts, output parsing, quality gates, importers.

ManualQA generates QA pairs with the two-stage method of question_extractor, which the seed
project ran with GPT-3.5 over the Model 3 manual: first ask the LLM for a numbered list of
questions that one piece of the manual alone can answer, then ask it to answer each question
from that same piece. This module holds the parts of that pipeline that need no Django and no
network, so they can be tested exhaustively and reused by the generation service, the admin
and the importers:

* **Prompts**: the default prompt texts, safe formatting (braces inside manual text never break
  ``str.format``) and validation of user-edited templates.
* **Parsing**: turning a chatty LLM reply into a clean list of questions, and cleaning answers.
* **Identity**: ``normalize_question``/``question_hash``, the key of the unique constraint on
  (chunk, question_hash), so a rerun never stores the same question twice for one chunk.
* **Quality gates**: flags computed when a pair is created, which the review queue filters on.
  They never drop a pair; a reviewer decides.
* **Context fitting**: splitting a chunk that does not fit an endpoint's context window.
* **Importers**: the seed project's two data formats (question_extractor's JSON and the
  ``<s>[INST] q [/INST] a </s>`` JSON Lines used for fine-tuning), with per-record problems
  reported instead of aborting the whole import.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "ANSWER_TEMPLATE_PLACEHOLDERS",
    "DEFAULT_ANSWER_SYSTEM_PROMPT",
    "DEFAULT_ANSWER_USER_TEMPLATE",
    "DEFAULT_QUESTIONS_SYSTEM_PROMPT",
    "DEFAULT_QUESTIONS_USER_TEMPLATE",
    "FLAG_DUPLICATE",
    "FLAG_EMPTY_ANSWER",
    "FLAG_LOW_GROUNDING",
    "FLAG_NOT_A_QUESTION",
    "FLAG_REFUSAL",
    "FLAG_SOURCE_CHANGED",
    "FLAG_TOO_LONG",
    "FLAG_TOO_SHORT",
    "LOW_GROUNDING_THRESHOLD",
    "QUALITY_FLAGS",
    "QUESTIONS_TEMPLATE_PLACEHOLDERS",
    "STOPWORDS",
    "ImportProblem",
    "ImportRecord",
    "MalformedOutput",
    "answer_flags",
    "answer_messages",
    "clean_answer",
    "grounding_score",
    "heading_slug",
    "lexical_grounding",
    "normalize_question",
    "parse_inst_jsonl",
    "parse_question_extractor_json",
    "parse_question_list",
    "question_flags",
    "question_hash",
    "questions_messages",
    "split_to_fit",
    "validate_template",
]

# --------------------------------------------------------------------------------------------
# Prompts
# --------------------------------------------------------------------------------------------

DEFAULT_QUESTIONS_SYSTEM_PROMPT: Final = (
    "You help build a question-answering dataset from a car owner's manual. You write the "
    "questions a car owner would really ask, and you only ask questions that the text you are "
    "given answers completely on its own."
)

DEFAULT_QUESTIONS_USER_TEMPLATE: Final = """\
Manual page: {title}
Section: {heading_path}

Text:
\"\"\"
{text}
\"\"\"

Write a numbered list of up to {count} distinct questions that a car owner might ask and that \
THIS text alone answers fully. Each question must make sense without seeing the text (name the \
feature or alert it is about). Do not ask about anything the text does not cover, and do not \
write the answers.

Put one question per line, like this:
1. ...
2. ..."""

DEFAULT_ANSWER_SYSTEM_PROMPT: Final = (
    "You answer a car owner's questions using only the text from the owner's manual that you "
    "are given. You never add facts that are not in that text."
)

DEFAULT_ANSWER_USER_TEMPLATE: Final = """\
Manual page: {title}
Section: {heading_path}

Text:
\"\"\"
{text}
\"\"\"

Question: {question}

Answer the question using only the text above. Be concise but complete: include every step, \
condition and warning from the text that the owner needs. If the text does not answer the \
question, say plainly that the text does not answer it, and do not guess."""

# The placeholders each user template must use, no more and no less: a template without
# {text} would generate questions about nothing, and an unknown name would fail at run time.
QUESTIONS_TEMPLATE_PLACEHOLDERS: Final = frozenset({"title", "heading_path", "text", "count"})
ANSWER_TEMPLATE_PLACEHOLDERS: Final = frozenset({"title", "heading_path", "text", "question"})


def validate_template(template: str, required: set[str] | frozenset[str]) -> None:
    """Check a user-edited prompt template before it is saved or used.

    The template must use every name in ``required`` as a ``{name}`` placeholder and no other
    placeholder. Literal braces are written doubled (``{{`` and ``}}``), as in ``str.format``.
    Raises ``ValueError`` with a message that names the unknown and missing placeholders (or
    the brace that breaks the syntax), so the edit form can show it to the user.

    Placeholders with attribute or index access (``{text.upper}``, ``{text[0]}``), positional
    ones (``{}``, ``{0}``) and conversions or format specs on unknown names count as unknown:
    templates come from users, and ``str.format`` attribute access is a known way to reach
    objects that a template has no business reaching.
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(
            f"the template is not valid: {error} (write a literal brace as {{{{ or }}}})"
        ) from error
    used: list[str] = []
    unknown: list[str] = []
    # A format spec can hold placeholders of its own ("{text:{width}}"); check those too.
    fields = [field for _literal, field, _spec, _conv in parsed if field is not None]
    fields += [
        field
        for _literal, _field, spec, _conv in parsed
        if spec and "{" in spec
        for _nested_literal, field, _nested_spec, _nested_conv in string.Formatter().parse(spec)
        if field is not None
    ]
    for field_name in fields:
        if field_name in required:
            used.append(field_name)
        elif field_name not in unknown:
            unknown.append(field_name)
    missing = sorted(set(required) - set(used))
    complaints = []
    if unknown:
        names = ", ".join("{" + name + "}" for name in unknown)
        complaints.append(f"unknown placeholder(s) {names}")
    if missing:
        names = ", ".join("{" + name + "}" for name in missing)
        complaints.append(f"missing placeholder(s) {names}")
    if complaints:
        allowed = ", ".join("{" + name + "}" for name in sorted(required))
        raise ValueError(f"{'; '.join(complaints)} (the template must use exactly {allowed})")


def _chat(
    system_prompt: str, user_template: str, required: frozenset[str], values: dict[str, object]
) -> list[dict[str, str]]:
    validate_template(user_template, required)
    # format_map inserts each value as is: braces inside the manual text or the question are
    # never parsed as placeholders, because formatting happens once, on the template only.
    user = user_template.format_map(values)
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": user}]


def questions_messages(
    *,
    title: str,
    heading_path: str,
    text: str,
    count: int,
    system_prompt: str = DEFAULT_QUESTIONS_SYSTEM_PROMPT,
    user_template: str = DEFAULT_QUESTIONS_USER_TEMPLATE,
) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for up to ``count`` questions about ``text``.

    Stage one of question_extractor. ``system_prompt`` is used verbatim (it has no
    placeholders); ``user_template`` is validated and formatted. Raises ``ValueError`` for a
    bad template or a ``count`` below 1.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    values = {"title": title, "heading_path": heading_path, "text": text, "count": count}
    return _chat(system_prompt, user_template, QUESTIONS_TEMPLATE_PLACEHOLDERS, values)


def answer_messages(
    *,
    title: str,
    heading_path: str,
    text: str,
    question: str,
    system_prompt: str = DEFAULT_ANSWER_SYSTEM_PROMPT,
    user_template: str = DEFAULT_ANSWER_USER_TEMPLATE,
) -> list[dict[str, str]]:
    """Chat messages (system + user) asking for the answer to ``question`` from ``text`` only.

    Stage two of question_extractor; same formatting rules as ``questions_messages``.
    """
    values = {"title": title, "heading_path": heading_path, "text": text, "question": question}
    return _chat(system_prompt, user_template, ANSWER_TEMPLATE_PLACEHOLDERS, values)


# --------------------------------------------------------------------------------------------
# Parsing LLM output
# --------------------------------------------------------------------------------------------


class MalformedOutput(ValueError):
    """The LLM's reply has nothing usable in it; the caller records it and may retry."""


# "1. Q", "1) Q", "(1) Q", "1 - Q", "1: Q", "Q1: Q", "Question 1. Q", "**1.** Q", "#1. Q"...
# The separator must be followed by whitespace, so "1.5 kW is..." or "12V battery" is not an
# item marker.
_NUMBERED_RE: Final = re.compile(
    r"""^(?:\*\*|__)?\s*
        (?:(?:q|question)\s*)?[#(]?\d{1,3}
        \s*[.):\-\u2013\u2014]
        (?:\*\*|__)?\s+(?P<item>.*)$""",
    re.IGNORECASE | re.VERBOSE,
)
_BULLET_RE: Final = re.compile(r"^[-*\u2022+]\s+(?P<item>.*)$")
# "Question: How ...?" inside an item, and an answer the model added despite the prompt.
_QUESTION_LABEL_RE: Final = re.compile(r"^(?:q|question)\s*[:.\-]\s*", re.IGNORECASE)
_TRAILING_ANSWER_RE: Final = re.compile(r"^(?P<question>.*?\?)\s+(?:a|answer)\s*[:\-]\s.*$", re.I)
_QUOTE_PAIRS: Final = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "`": "`"}


def _strip_wrappers(text: str) -> str:
    """Remove bold, italics and quotes that wrap the whole of ``text`` (repeatedly: **"Q?"**)."""
    while True:
        text = text.strip()
        unwrapped = _unwrap(text, "**", "**") or _unwrap(text, "*", "*")
        if unwrapped is None and text[:1] in _QUOTE_PAIRS:
            unwrapped = _unwrap(text, text[0], _QUOTE_PAIRS[text[0]])
        if unwrapped is None:
            return text
        text = unwrapped


def _unwrap(text: str, opening: str, closing: str) -> str | None:
    """``text`` without ``opening``...``closing`` when they wrap all of it, else None.

    '"Park" and "Drive"' or "*Note* ... *end*" start and end with the marks without being
    wrapped in them, so the marks must not occur inside as well.
    """
    if len(text) < len(opening) + len(closing) + 1:
        return None
    if not (text.startswith(opening) and text.endswith(closing)):
        return None
    inner = text[len(opening) : -len(closing)]
    if opening in inner or closing in inner:
        return None
    return inner


def _clean_item(item: str) -> str:
    # "**1. How ...?**" leaves a lone closing "**" once the marker is gone.
    if item.count("**") % 2 == 1:
        item = item.removeprefix("**").removesuffix("**")
    item = _strip_wrappers(item)
    item = _QUESTION_LABEL_RE.sub("", item)
    answered = _TRAILING_ANSWER_RE.match(item)
    if answered:
        item = answered.group("question")
    return " ".join(_strip_wrappers(item).split())


def parse_question_list(output: str, *, limit: int) -> list[str]:
    """The questions in an LLM reply to the questions prompt, in order, without duplicates.

    Models rarely return only the list they were asked for, so this accepts:

    * numbered items in any common style (``1.``, ``1)``, ``1 -``, ``Q1:``, ``**1.**``) or,
      when there are no numbered items, bullets (``-``, ``*``, ``•``); when both appear, only
      the numbered items count, so a sub-bullet or a bulleted preamble is not taken as a
      question;
    * a preamble ("Here are 5 questions:") and trailing chatter, which are ignored;
    * a numbered item that wraps onto the next line: an unterminated item is joined with the
      following unmarked line when that line is indented, starts in lower case or ends with
      "?" (so a closing "I hope these help!" is not glued onto the last question);
    * questions wrapped in quotes or bold, a "Question:" label, an answer appended after "?";
    * no markers at all: then every line ending in "?" is a question.

    Items that do not look like questions are kept; ``question_flags`` marks them for review.
    Duplicates (by ``normalize_question``) keep their first occurrence. At most ``limit``
    questions are returned. Raises ``MalformedOutput`` when nothing usable is found.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    numbered: list[str] = []
    bulleted: list[str] = []
    unmarked_questions: list[str] = []
    # The list the previous line was appended to, so a wrapped line can join it; None after a
    # blank or unmarked line ends the item.
    last: list[str] | None = None
    for raw_line in output.splitlines():
        line = raw_line.strip()
        if not line:
            last = None
            continue
        if match := _NUMBERED_RE.match(line):
            numbered.append(match.group("item"))
            last = numbered
        elif match := _BULLET_RE.match(line):
            bulleted.append(match.group("item"))
            last = bulleted
        else:
            if last is not None and _continues(last[-1], raw_line, line):
                last[-1] = f"{last[-1]} {line}"
                continue
            last = None
            if _strip_wrappers(line).endswith("?"):
                unmarked_questions.append(line)
    candidates = numbered or bulleted or unmarked_questions
    questions: list[str] = []
    seen: set[str] = set()
    for candidate in candidates:
        question = _clean_item(candidate)
        key = normalize_question(question)
        if not key or key in seen:
            continue
        seen.add(key)
        questions.append(question)
        if len(questions) == limit:
            break
    if not questions:
        raise MalformedOutput(f"no questions found in the model output: {output[:80]!r}")
    return questions


def _continues(item: str, raw_line: str, line: str) -> bool:
    """Whether an unmarked ``line`` is the wrapped rest of ``item`` (see parse_question_list)."""
    if _strip_wrappers(item).endswith((".", "?", "!", ":")):
        return False
    indented = raw_line[:1].isspace()
    return indented or line[:1].islower() or _strip_wrappers(line).endswith("?")


_ANSWER_LABEL_RE: Final = re.compile(
    r"^\s*(?:\*\*|__)?\s*(?:answer|a)\s*:\s*(?:\*\*|__)?\s*", re.IGNORECASE
)


def clean_answer(output: str) -> str:
    """An LLM's answer without the wrapping models add: "Answer:" labels, quotes, whitespace.

    Markdown inside the answer (numbered steps, bullets, line breaks) is kept: steps are how
    the manual gives procedures, and the chat renders them. Line endings become ``\\n``.
    """
    text = output.replace("\r\n", "\n").replace("\r", "\n").strip()
    while True:
        before = text
        text = _strip_wrappers(_ANSWER_LABEL_RE.sub("", text, count=1))
        if text == before:
            return text


# --------------------------------------------------------------------------------------------
# Identity and dedupe
# --------------------------------------------------------------------------------------------

_APOSTROPHES_RE: Final = re.compile(r"['\u2019\u2018`]")
_NON_WORD_RE: Final = re.compile(r"[^\w\s]+")


def normalize_question(question: str) -> str:
    """The form of a question used to find duplicates: case, spacing and punctuation removed.

    Unicode NFKC (full-width letters, ligatures and non-breaking spaces become plain ones),
    lower case, apostrophes dropped (``what's`` -> ``whats``, so a curly and a straight
    apostrophe agree), every other punctuation mark replaced by a space (``charge-port`` ->
    ``charge port``, ``DIF_a251/DIR_a251`` keeps both codes apart; ``_`` is part of a word),
    whitespace collapsed. Two questions that differ only in these ways ask the same thing.
    """
    text = unicodedata.normalize("NFKC", question).lower()
    text = _APOSTROPHES_RE.sub("", text)
    text = _NON_WORD_RE.sub(" ", text)
    return " ".join(text.split())


def question_hash(question: str) -> str:
    """SHA-256 (hex) of ``normalize_question``: the dedupe key stored with each QA pair."""
    return hashlib.sha256(normalize_question(question).encode("utf-8")).hexdigest()


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


# Phrases with which an answer says the source does not answer the question. Each phrase is
# anchored on its subject ("the text does not mention", "not mentioned in the provided text")
# because the manual itself is full of "does not", "unable to" and "not covered": in the Model 3
# pairs "This alert does not indicate a flat tire", "Unable to charge - Insufficient grounding"
# and "damage ... is not covered by the warranty" are real answers, not refusals.
_SOURCE_NOUNS: Final = (
    r"(?:text|passage|context|documentation|document|manual|section|excerpt|information|source"
    r"|content|page)"
)
_REFUSAL_PATTERNS: Final = (
    # "The (provided) text does not (explicitly) say/mention/provide/specify ..."
    rf"\b{_SOURCE_NOUNS}\s+(?:provided\s+|given\s+|above\s+)?(?:does\s+not|doesn't|do\s+not|"
    r"don't|did\s+not|didn't)\s+(?:explicitly\s+|specifically\s+|directly\s+|clearly\s+)?"
    r"(?:say|mention|provide|specify|state|contain|include|cover|explain|describe|address|give"
    # "The documentation does not cover every situation" restates the manual's own caveat.
    r"|answer|discuss|indicate|list|detail|offer)\b(?!\s+(?:every|all)\b)",
    # "... is not (explicitly) mentioned in the provided text"
    r"\bnot\s+(?:explicitly\s+|specifically\s+|directly\s+|clearly\s+)?(?:mentioned|stated"
    r"|specified|provided|given|listed|covered|described|discussed|addressed|included|found"
    rf"|explained)\s+in\s+(?:the|this)\s+(?:provided\s+|given\s+|above\s+)?{_SOURCE_NOUNS}",
    r"\bnot\s+mentioned\b",
    r"\bno\s+mention\s+of\b",
    r"\bno\s+(?:specific\s+)?information\b",
    r"\b(?:not\s+enough|insufficient)\s+information\b",
    r"\bi\s+(?:don't|do\s+not)\s+know\b",
    r"\bi(?:'m|\s+am)\s+not\s+sure\b",
    r"\b(?:cannot|can't|can\s+not|unable\s+to|not\s+able\s+to)\s+(?:be\s+)?answer",
    r"\bnot\s+possible\s+to\s+(?:determine|say|answer|tell|know)\b",
    # Only "from/based on": "when the speed limit cannot be determined" describes the car.
    r"\b(?:cannot|can't)\s+be\s+determined\s+(?:from|based\s+on)\b",
    r"\bas\s+an\s+ai\b",
    r"\bi(?:'m|\s+am)\s+sorry\b",
    r"\bi\s+apologi[sz]e\b",
)
_REFUSAL_RE: Final = re.compile("|".join(_REFUSAL_PATTERNS), re.IGNORECASE)


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
    # Models write both ' and ’; the patterns are written with '.
    if _REFUSAL_RE.search(answer.replace("\u2019", "'")):
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


# --------------------------------------------------------------------------------------------
# Importers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportRecord:
    """One QA pair read from an import file.

    ``page`` is the source document's file name (``charging_instructions.md``: the base name
    of the source path before any ``/##``), which is how ingestion names documents, so the
    service can find the document; it is ``""`` where the format has no source (the
    ``[INST]`` JSON Lines). ``section_slug`` is the question_extractor heading slug without
    its ``##`` (see ``heading_slug``), or None for a whole page.
    """

    line: int
    page: str
    section_slug: str | None
    question: str
    answer: str


@dataclass(frozen=True)
class ImportProblem:
    """A record that could not be imported; ``message`` starts with where it is."""

    line: int
    message: str


_QE_FIELDS: Final = ("source", "question", "answer")


def _decode(raw: str | bytes) -> str | ImportProblem:
    """The file's text (a byte-order mark dropped), or a problem at the first undecodable line."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return ImportProblem(line, f"line {line}: the file is not UTF-8 text ({error.reason})")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _split_source(source: str) -> tuple[str, str | None]:
    path, _, slug = source.partition("/##")
    page = re.split(r"[\\/]", path.rstrip("/\\"))[-1]
    return page, (slug.strip() or None)


def _question_extractor_record(value: Any, line: int, where: str) -> ImportRecord | ImportProblem:
    if not isinstance(value, dict):
        return ImportProblem(
            line, f'{where}: expected an object with "source", "question" and "answer", '
            f"got {_json_type(value)}"
        )  # fmt: skip
    complaints = []
    fields: dict[str, str] = {}
    for name in _QE_FIELDS:
        if name not in value:
            complaints.append(f'missing "{name}"')
        elif not isinstance(value[name], str):
            complaints.append(f'"{name}" must be a string, got {_json_type(value[name])}')
        elif not value[name].strip():
            complaints.append(f'"{name}" is empty')
        else:
            fields[name] = value[name].strip()
    if complaints:
        return ImportProblem(line, f"{where}: {'; '.join(complaints)}")
    page, slug = _split_source(fields["source"])
    return ImportRecord(line, page, slug, fields["question"], fields["answer"])


def parse_question_extractor_json(
    raw: str | bytes,
) -> tuple[list[ImportRecord], list[ImportProblem]]:
    """Read question_extractor output: records ``{"source", "question", "answer"}``.

    Two layouts are accepted: a JSON array of records (the seed project's ``qa_pairs.json``)
    and JSON Lines, one record per line. A JSON array has no useful line numbers (it may be
    one line, or pretty-printed over many), so there ``line`` is the record's 1-based position
    in the array and messages say "record N"; in JSON Lines it is the line number and messages
    say "line N" (blank lines are skipped but counted).

    ``source`` looks like ``data_gpt35_v2/docs/<page>.md[/##<section-slug>]``; it becomes the
    record's ``page`` and ``section_slug``. A record with a missing, empty or non-string field
    becomes a problem and the others still import. A file that is not valid JSON at all gives
    one problem at the line where the JSON parser stopped.
    """
    text = _decode(raw)
    if isinstance(text, ImportProblem):
        return [], [text]
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            message = f"line {error.lineno}: not valid JSON: {error.msg}"
            return [], [ImportProblem(error.lineno, message)]
        outcomes = [
            _question_extractor_record(value, index, f"record {index}")
            for index, value in enumerate(data, start=1)
        ]
    else:
        # A single pretty-printed object is neither an array nor JSON Lines; accept it too.
        try:
            whole = json.loads(text) if stripped.startswith("{") else None
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            outcomes = [_question_extractor_record(whole, 1, "record 1")]
        else:
            outcomes = []
            for number, line in _json_lines(text):
                outcomes.append(
                    line
                    if isinstance(line, ImportProblem)
                    else _question_extractor_record(line, number, f"line {number}")
                )
    records = [outcome for outcome in outcomes if isinstance(outcome, ImportRecord)]
    problems = [outcome for outcome in outcomes if isinstance(outcome, ImportProblem)]
    return records, problems


def _json_lines(text: str) -> list[tuple[int, Any]]:
    """(line number, parsed value or ImportProblem) for each non-blank line."""
    parsed: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            message = f"line {number}: not valid JSON: {error.msg}"
            parsed.append((number, ImportProblem(number, message)))
    return parsed


_INST_RE: Final = re.compile(
    r"""^\s*(?:<s>)?\s*\[INST\](?P<question>.*?)\[/INST\](?P<answer>.*?)\s*(?:</s>)?\s*$""",
    re.DOTALL,
)
_SYS_BLOCK_RE: Final = re.compile(r"<<SYS>>.*?<</SYS>>", re.DOTALL)


def _inst_record(value: Any, number: int) -> ImportRecord | ImportProblem:
    where = f"line {number}"
    if not isinstance(value, dict):
        return ImportProblem(number, f'{where}: expected an object with "text", got '
                             f"{_json_type(value)}")  # fmt: skip
    if "text" not in value:
        return ImportProblem(number, f'{where}: missing "text"')
    text = value["text"]
    if not isinstance(text, str):
        return ImportProblem(number, f'{where}: "text" must be a string, got {_json_type(text)}')
    match = _INST_RE.match(text)
    if match is None:
        return ImportProblem(
            number, f'{where}: "text" is not in the form "<s>[INST] question [/INST] answer </s>"'
        )
    question = _SYS_BLOCK_RE.sub("", match.group("question")).strip()
    answer = match.group("answer").strip()
    if "[INST]" in answer or "[INST]" in question:
        return ImportProblem(number, f"{where}: more than one [INST] turn; expected exactly one")
    complaints = []
    if not question:
        complaints.append("the question is empty")
    if not answer:
        complaints.append("the answer is empty")
    if complaints:
        return ImportProblem(number, f"{where}: {'; '.join(complaints)}")
    return ImportRecord(number, "", None, question, answer)


def parse_inst_jsonl(raw: str | bytes) -> tuple[list[ImportRecord], list[ImportProblem]]:
    """Read the seed project's fine-tuning data: JSON Lines of ``{"text": "<s>[INST] ..."}``.

    Each line is ``{"text": "<s>[INST] question [/INST] answer </s>"}``, the Llama 2 chat
    format. Tolerated: a missing ``<s>`` or ``</s>``, extra whitespace, and a
    ``<<SYS>>...<</SYS>>`` system block inside ``[INST]``, which is dropped (it is the same
    instruction on every line, not part of the question). Blank lines are skipped. A line that
    is not JSON, has no ``text`` string, lacks the markers, holds more than one turn or has an
    empty question or answer becomes a problem with its line number; the rest import. The
    format names no source, so ``page`` is ``""``.
    """
    text = _decode(raw)
    if isinstance(text, ImportProblem):
        return [], [text]
    records: list[ImportRecord] = []
    problems: list[ImportProblem] = []
    for number, value in _json_lines(text):
        outcome = value if isinstance(value, ImportProblem) else _inst_record(value, number)
        (records if isinstance(outcome, ImportRecord) else problems).append(outcome)
    return records, problems


def heading_slug(heading: str) -> str:
    """question_extractor's slug for a heading, as it appears after ``/##`` in a source.

    Lower case, surrounding whitespace stripped, each space replaced by "-", every other
    character kept: ``"Alert: DIF_a251 / DIR_a251"`` -> ``"alert:-dif_a251-/-dir_a251"``.
    Leading ``#`` marks are not part of the heading and are removed if passed in.
    """
    return heading.strip().lstrip("#").strip().lower().replace(" ", "-")
