"""Sentences of a manual that say where something is rather than what it is: a pointer to
another section ("For instructions on how to lift Model 3, see Jacking and Lifting.") and the
path to a setting on the touchscreen ("Controls > Locks > Driver Door Unlock Mode"). Plain
Python; ``chat.quoting`` scores quotes by them, and :func:`follow_pointers` gives the
sections they name what the pointer lost."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # chat.spans reads pointers: no import at run time
    from chat.spans import Scored

__all__ = [
    "address_to_read",
    "asks_where_to_read",
    "follow_pointers",
    "is_pointer",
    "names_a_setting",
    "pointed_at",
    "referred_to",
    "section_named",
]

# A sentence that only sends the reader elsewhere ("For more information, see Charging.",
# "See Sentry Mode for more details.", "Instructions for ... are provided in Replacing ...",
# "Visit https://... for more information on scheduling service."; for "how do i book a
# service appt", that sentence was quoted alone, not how to schedule service in the app).
_POINTER: Final = re.compile(
    r"^(?:(?:note|tip):\s*)?(?:"
    r"(?:for (?:more |further |additional |detailed )?(?:information|details|instructions|help)\b"
    r"[^.]*?,\s*)?(?:see|refer to)\s+(?:(?-i:[A-Z])|the\b[^.]*?\b(?:guide|manual|section)\b)"
    r"|(?:detailed )?(?:instructions|information|details)\b[^.]*?\b(?:are|is) (?:provided|given|"
    r"described|available) in\b"
    # a website for more: "Visit https://... for more information on scheduling service."
    r"|(?:visit|go to)\s+(?:https?://|www\.)\S+\s+for (?:more |further )?(?:information|details)\b"
    r"|for (?:more |further )?(?:information|details)\b[^.]*?,\s*(?:visit|go to)\s+(?:https?://|www\.))",
    re.IGNORECASE,
)
# The section such a sentence sends the reader to.
_POINTED_AT: Final = re.compile(
    r"\b(?:see|refer to|provided in|described in|given in|available in)\s+(?:the\s+)?"
    r"(?P<target>[^.()]+?)\s*(?:\bfor (?:more |further )?(?:information|details)\b|[.]|$)",
    re.IGNORECASE,
)
# A reference in brackets at the end of a sentence with content of its own: "If the touchscreen
# is unresponsive, you can restart it (see Restarting the Touchscreen)."
_REFERENCE: Final = re.compile(
    r"\((?:see|refer to)\s+(?:the\s+)?(?P<target>[^()]+?)\)\s*[.!]?\s*$", re.IGNORECASE
)
# Where a setting is on the touchscreen: "Controls > Locks > Driver Door Unlock Mode".
_SETTING_PATH: Final = re.compile(r"\b[A-Z][\w-]*(?: [\w&/-]+){0,3} > [A-Z0-9]")


def is_pointer(sentence: str) -> bool:
    """Whether ``sentence`` only sends the reader to another section or document; a sentence
    with content of its own and a reference in brackets ("... (see Seats).") is none."""
    return bool(_POINTER.match(sentence))


def pointed_at(sentence: str) -> str | None:
    """The section a pointer names, lower-cased ("jacking and lifting"); None for a sentence
    that is no pointer."""
    if not is_pointer(sentence) or not (found := _POINTED_AT.search(sentence)):
        return None
    return _normal(found.group("target"))


def referred_to(sentence: str) -> str | None:
    """The section a sentence with content of its own refers to at its end, in brackets,
    lower-cased ("restarting the touchscreen"); None for a pointer or a sentence without."""
    if is_pointer(sentence) or not (found := _REFERENCE.search(sentence)):
        return None
    return _normal(found.group("target"))


def section_named(heading_path: str, sections: Iterable[str]) -> bool:
    """Whether a level of ``heading_path`` ("Jacking and Lifting > Jacking Procedure") is one
    of ``sections`` (as :func:`pointed_at` gives them)."""
    return not {_normal(part) for part in heading_path.split(">")}.isdisjoint(sections)


def follow_pointers(
    scored: list[Scored], headings: Sequence[str], *, anchors: int, gain: float
) -> set[int]:
    """Give ``gain`` (what a pointer among the ``anchors`` best units lost) to the units of the
    passages whose heading path (``headings``, one per passage) names the section it points
    to ("..., see Jacking and Lifting": the passage headed "Jacking and Lifting > ..."), and as
    much to those of a section that a sentence or a Note among the best units refers to in
    brackets ("..., you can restart it (see Restarting the Touchscreen)": the manual says where
    it tells how); those passages' indexes. ``scored`` is sorted best first."""
    least = scored[min(anchors, len(scored)) - 1].score
    targets = {
        target
        for item in scored
        # (a pointer's score has its penalty taken off already)
        if item.score + gain >= least and (target := pointed_at(item.unit.plain)) is not None
    }
    # Only from a sentence or a Note: a step that refers elsewhere ("If it is not, set it up
    # again (see Setting up your phone as a key).") is part of a procedure that answers, and
    # its reference is for a case within it.
    targets |= {
        target
        for item in scored
        if item.score >= least
        and item.unit.kind in ("sentence", "callout")
        and (target := referred_to(item.unit.plain)) is not None
        and not section_named(headings[item.passage], {target})
    }
    if not targets:
        return set()
    named = {index for index, heading in enumerate(headings) if section_named(heading, targets)}
    for item in scored:
        if item.passage in named:
            item.score += gain
    return named


def names_a_setting(text: str) -> bool:
    """Whether ``text`` gives the path to a setting ("touch Controls > Locks > ...")."""
    return bool(_SETTING_PATH.search(text))


# A question asking where to read or watch how to do something ("is there an official guide
# for changing the wiper blades", "where are the instructions", "does tesla have videos
# somewhere"): the manual's web address for them answers it, not the steps it gives for one of
# the jobs (six development and blind questions quoted how to replace the wiper blades).
# What one reads or watches to learn how: the owner asks for it, a manual's web address offers it.
_READING: Final = r"instructions|guides?|videos|tutorials?|documentation"
_RESOURCE: Final = rf"(?:{_READING}|how-?tos?|website)"
_WHERE_TO_READ: Final = re.compile(
    rf"\bwhere\b[^?.]*\b{_RESOURCE}\b|\b{_RESOURCE}\b[^?.]*\b(?:somewhere|online)\b|"
    rf"\b(?:is|are)\s+there\s+(?:an?\s+|any\s+)?(?:official\s+)?{_RESOURCE}\b|"
    rf"\b(?:does|do)\s+(?:tesla|they)\s+(?:have|put\s+out|make)\s+(?:an?\s+|any\s+)?"
    rf"(?:official\s+)?{_RESOURCE}\b",
    re.IGNORECASE,
)
_WEB_ADDRESS: Final = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)
# What a web address is given for: reading or watching, not buying ("the Tesla Shop (or
# https://shop.tesla.cn/ for China)").
_TO_READ: Final = re.compile(
    rf"\b(?:{_READING}|animations|information|details|procedures|manuals?)\b", re.IGNORECASE
)


def asks_where_to_read(question: str) -> bool:
    """Whether ``question`` asks where to read or watch how to do something (a guide, the
    instructions, videos)."""
    return bool(_WHERE_TO_READ.search(question))


def address_to_read(text: str) -> bool:
    """Whether ``text`` gives a web address to read or watch something at ("Go to https://...
    for instructions, animations, and videos of these procedures.")."""
    return bool(_WEB_ADDRESS.search(text) and _TO_READ.search(text))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
