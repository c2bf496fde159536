"""Three ways to tell that an answer does not answer, side by side, because they serve three
purposes and must not be confused (a "refusal" means something different on each screen).

* :func:`is_decline`, **the chat's own decline**: the answer *starts with*
  :data:`DECLINE_PREFIX` ("The manual does not say"), the text the chat's prompt asks a model
  to reply with and the chat writes itself when it declines. Strict by design: a passing
  "the manual does not say what colour..." inside an answer is not a decline, so the chat
  never hides a real answer behind a false decline.
* :func:`is_refusal`, **the evaluation metric** (``refused``, ``refusal_accuracy``,
  ``false_refusal_rate``): any answer whose *first two sentences* say the manual, the context or
  "I" cannot answer, in any model's wording ("I'm sorry, but the provided context doesn't
  cover..."). Only the opening counts: an answer that gives the facts and then adds a caveat
  answered the question. Every pattern needs a subject (the manual, the context, "I"), so an
  instruction with a negation ("Do not open the door while charging") is not a refusal.
* :func:`admits_gap`, **the review flag** (``refusal`` on a generated QA pair): the answer admits
  *anywhere* that its source is silent ("... is not mentioned in the provided text", "no
  information"). The loosest of the three, because a reviewer decides: a partial answer that
  admits a gap is flagged too. Anchored on a subject as well, since the manual itself is full of
  "does not" and "unable to" ("Unable to charge - Insufficient grounding" is a real answer).

Plain Python (no Django).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DECLINE_PREFIX", "REFUSAL_PATTERNS", "admits_gap", "is_decline", "is_refusal"]

#: How every chat decline starts, so owners (and tests, and the feedback queue) can tell.
DECLINE_PREFIX: Final = "The manual does not say"


def is_decline(answer: str) -> bool:
    """Whether a model's answer is the decline the prompt asks for: it starts with it (a
    passing "the manual does not say what..." inside an answer is not a decline)."""
    return answer.strip().lstrip("\"'*_ ").lower().startswith(DECLINE_PREFIX.lower())


# --------------------------------------------------------------------------------------------
# The evaluation metric

# An honest decline says that the manual (or the provided context) is silent, or that the
# assistant cannot find or does not know the answer. Every pattern needs the manual, the context
# or "I" as its subject, so that ordinary instructions with a negation in them ("Do not open the
# door while charging", "the manual release does not need power") are not declines.
# "n[o'’]t" after an optional space matches "not", "n't" and "n’t" (curly apostrophe) alike.
_SOURCE: Final = (
    r"(?:(?:owner[’']?s\s+)?manual(?!\s+(?:release|door|override|mode|latch|handle|cable))"
    r"|documentation|context|excerpts?|sources?"
    r"|provided\s+(?:text|context|information|excerpts?|sections?|pages?|documents?)"
    r"|information\s+(?:provided|given|available))"
)
_SOURCE_VERB: Final = (
    r"(?:say|mention|cover|specify|state|include|contain|provide|address|describe|explain"
    r"|discuss|list|give|have|tell|indicate|document)s?"
)
_INFORMATION: Final = r"(?:information|mention|details?|guidance|instructions?)"
REFUSAL_PATTERNS: Final = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        # "The manual does not say ...", "the provided context doesn't cover ..."
        rf"\b{_SOURCE}\s+(?:itself\s+)?(?:does|did|do)\s*n[o'’]t\s+"
        rf"(?:seem\s+to\s+|appear\s+to\s+)?(?:explicitly\s+|specifically\s+)?{_SOURCE_VERB}\b",
        # "I could not find this in the manual", "I'm unable to answer", "I can't tell"
        r"\bI(?:\s+could\s*n[o'’]t|\s+can(?:\s*not|[’']t)|\s+was\s*n[o'’]t\s+able\s+to"
        r"|(?:'m|’m|\s+am|\s+was)\s+(?:not\s+able|unable)\s+to)"
        r"\s+(?:find|locate|answer|determine|tell|say|confirm)\b",
        # "I don't know", "I do not have enough information"
        r"\bI\s+do\s*n[o'’]t\s+know\b",
        rf"\bI\s+do\s*n[o'’]t\s+have\s+(?:enough\s+|any\s+|that\s+|the\s+)?{_INFORMATION}\b",
        # "This is not covered in the manual", "isn't mentioned in the provided context"
        r"\b(?:is|are|was|were)\s*n[o'’]t\s+(?:(?:covered|mentioned|addressed|specified"
        r"|described|documented|stated|included|explained|listed|found|available)\s+)?"
        rf"(?:in|by)\s+(?:the\s+|this\s+|your\s+)?(?:\w+\s+)?{_SOURCE}\b",
        # "There is no information about that", "The manual gives no details on ..."
        rf"\b(?:there\s+is|there[’']s|I\s+(?:found|have|see))\s+no\s+{_INFORMATION}\b",
        rf"\b{_SOURCE}\s+(?:has|contains|gives|provides|includes)\s+no\s+{_INFORMATION}\b",
    )
)
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+")
_OPENING_SENTENCES: Final = 2


def is_refusal(answer: str) -> bool:
    """Whether ``answer`` declines to answer because the manual does not say.

    Only the first two sentences are searched (:data:`REFUSAL_PATTERNS`): a decline comes first
    ("I'm sorry, but the manual does not say..."), while an answer that gives the facts and then
    adds a caveat ("... The manual does not specify a torque.") answered the question. The
    patterns need the manual, the context or "I" as subject, so an answer that merely contains
    "not" ("Do not use a pressure washer") is not a refusal.
    """
    opening = " ".join(_SENTENCE_END.split(answer.strip())[:_OPENING_SENTENCES])
    return any(pattern.search(opening) for pattern in REFUSAL_PATTERNS)


# --------------------------------------------------------------------------------------------
# The review flag

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


def admits_gap(answer: str) -> bool:
    """Whether ``answer`` says anywhere that its source does not answer the question."""
    # Models write both ' and ’; the patterns are written with '.
    return bool(_REFUSAL_RE.search(answer.replace("\u2019", "'")))
