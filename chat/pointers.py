"""Sentences of a manual that say where something is rather than what it is: a pointer to
another section ("For instructions on how to lift Model 3, see Jacking and Lifting.") and the
path to a setting on the touchscreen ("Controls > Locks > Driver Door Unlock Mode"). Plain
Python; ``chat.quoting`` scores quotes by them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

__all__ = ["is_pointer", "names_a_setting", "pointed_at", "referred_to", "section_named"]

# A sentence that only sends the reader elsewhere ("For more information, see Charging.",
# "See Sentry Mode for more details.", "Instructions for ... are provided in Replacing ...").
_POINTER: Final = re.compile(
    r"^(?:(?:note|tip):\s*)?(?:"
    r"(?:for (?:more |further |additional |detailed )?(?:information|details|instructions|help)\b"
    r"[^.]*?,\s*)?(?:see|refer to)\s+(?:(?-i:[A-Z])|the\b[^.]*?\b(?:guide|manual|section)\b)"
    r"|(?:detailed )?(?:instructions|information|details)\b[^.]*?\b(?:are|is) (?:provided|given|"
    r"described|available) in\b)",
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


def names_a_setting(text: str) -> bool:
    """Whether ``text`` gives the path to a setting ("touch Controls > Locks > ...")."""
    return bool(_SETTING_PATH.search(text))


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
