"""Which end of the car a text speaks of, the front or the rear: a question about the front
headrests is not answered by a passage about the rear one. Plain Python; ``chat.quoting``
scores quotes by it."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["named_sides", "other_end"]

# Which end of the car a text names: "the front headrests", "rear doors", "the back seat".
_SIDES: Final = {
    "front": re.compile(r"\bfront\b|\bfrunk\b", re.IGNORECASE),
    "rear": re.compile(r"\brear\b|\bback\s*seats?\b", re.IGNORECASE),
}


def named_sides(text: str) -> frozenset[str]:
    """The ends of the car ``text`` names ("front", "rear"), for telling a question about the
    front headrests from a passage about the rear one."""
    return frozenset(side for side, pattern in _SIDES.items() if pattern.search(text))


def other_end(question: str, heading_paths: Sequence[str]) -> Callable[[int, str], bool]:
    """Whether a text of passage ``index`` (under ``heading_paths[index]``) speaks of the other
    end of the car than the question (it asks about the front headrests; the text names the
    rear only, or, naming neither, the most specific level of its section's heading that names
    an end does: "Rear Trunk > Interior Emergency Trunk Release" for "could a kid get out of
    the frunk"); never when the question names neither end, or both, nor when the text
    restricts something to one end ("only on the rear tires"): that answers for the other."""
    asked = named_sides(question)
    sections = [_section_sides(heading_path) for heading_path in heading_paths]

    def other(index: int, text: str) -> bool:
        if _ONLY_AT_ONE_END.search(text):
            return False  # "only on the rear tires" answers "can i put chains on the front"
        named = named_sides(text) or sections[index]
        return len(asked) == 1 and bool(named) and not named & asked

    return other


# A restriction to one end of the car ("may be fitted only on the rear tires", "rear seats
# only"): it says what holds at the other end too.
_ONLY_AT_ONE_END: Final = re.compile(
    r"\bonly\b(?:\s+[\w-]+){0,3}?\s+(?:front|rear)\b|\b(?:front|rear)\b(?:\s+[\w-]+){0,2}?\s+only\b",
    re.IGNORECASE,
)


def _section_sides(heading_path: str) -> frozenset[str]:
    """The end of the car the most specific level of ``heading_path`` that names one names
    ("Rear Trunk > Interior Emergency Trunk Release": the rear; "Front and Rear Seats >
    Raising the Rear Center Head Support": the rear)."""
    for level in reversed(heading_path.split(">")):
        if sides := named_sides(level):
            return sides
    return frozenset()
