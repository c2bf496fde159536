"""Turning a chatty LLM reply into a clean list of questions, and cleaning answers."""

from __future__ import annotations

import re
from typing import Final

from curation.qa.identity import normalize_question

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
