"""The names a manual gives things, as an owner may type them: product designations ("Model
3", "Gen 2"), codes off a screen or a label ("BRK-040"), and the initials of capitalised names
("FSD" for "Full Self-Driving"). Plain Python; ``chat.text_units.Vocabulary`` collects a
manual's, ``chat.declines`` and ``chat.asking`` read a question's."""

from __future__ import annotations

import re
from typing import Final

from chat.stemming import stem

__all__ = ["CODE", "acronyms", "codes", "designations", "short_forms"]

# "Model 3", "Model Y", "Gen 2", "Series 7": a designator word, then a code of one or two
# characters or with a digit; "model year", "model name", "generation capability" and the
# short words of "which model do I have" or "a model a day" name no product.
_DESIGNATION: Final = re.compile(
    r"\b(model|series|gen|generation)\s+"
    r"((?!(?:a|i|am|an|as|at|be|by|do|go|if|in|is|it|me|my|no|of|on|or|so|to|up|us|we)\b)"
    r"[a-z0-9]{1,2}|[a-z]*\d[a-z0-9-]*)\b",
    re.IGNORECASE,
)
# "Full Self-Driving", "Traffic-Aware Cruise Control", "Navigate on Autopilot": capitalised
# words in a row (short linking words allowed), whose initials owners type as a word.
_NAME: Final = re.compile(
    r"\b[A-Z][A-Za-z]*(?:(?:[ -]+(?:on|of|and|to|for|in|the))?[ -]+[A-Z][A-Za-z]*){2,5}\b"
)
_NAME_PART: Final = re.compile(r"[A-Za-z]+")
_LINKING: Final = frozenset({"on", "of", "and", "to", "for", "in", "the"})

# "Model 3s" are Model 3 cars.
_PLURAL_CODE: Final = re.compile(r"(?<=\d)s$")
# An identifier an owner copies off a screen or a label: an alert's code ("BRK-040", "CHG031",
# "APP_w224"), a fault code ("P0420"): letters, then digits, joined or not by "-" or "_".
CODE: Final = re.compile(r"\b([a-z]{1,5})[-_]?([a-z]?\d{3,4})\b", re.IGNORECASE)


def designations(text: str) -> dict[str, str]:
    """The product designations ``text`` names: "model", "series", "gen" or "generation" and a
    code of one or two characters or with a digit ("Model 3", "Model Y", "Gen 2"), lower-cased,
    each with the words as written."""
    found: dict[str, str] = {}
    for match in _DESIGNATION.finditer(text):
        code = _PLURAL_CODE.sub("", match.group(2).lower())
        found.setdefault(f"{stem(match.group(1).lower())} {code}", match.group(0))
    return found


def short_forms(text: str) -> dict[str, str]:
    """How an owner shortens the designations with a digit that ``text`` names
    (:func:`designations`): the designator's first letter or the whole word run into the code
    ("m3", "model3" -> "Model 3"; "g2" -> "Gen 2"), lower-cased, each with the designation as
    written. None for a code of letters alone: "Model Y" would give "my"."""
    found: dict[str, str] = {}
    for name, written in designations(text).items():
        code = name.split(" ", 1)[1]
        if not any(character.isdigit() for character in code):
            continue
        designator = written.split()[0].lower()
        for short in (f"{designator[0]}{code}", f"{designator}{code}"):
            found.setdefault(short, _PLURAL_CODE.sub("", written))
    return found


def codes(text: str) -> dict[str, str]:
    """The codes ``text`` names (:data:`CODE`), lower-cased without their "-" or "_"
    ("brk040"), each as written ("BRK-040")."""
    return {
        f"{match.group(1)}{match.group(2)}".lower(): match.group(0) for match in CODE.finditer(text)
    }


def acronyms(text: str) -> dict[str, str]:
    """The initials an owner could type for the capitalised names in ``text``, at least three
    letters, stemmed like a question's words, each with the name ("fsd" -> "Full Self Driving";
    "noa" -> "Navigate on Autopilot", with its linking word or without when that leaves three
    letters). A name that starts a sentence may have its first word left out: "Touch Full
    Self-Driving" gives "fsd" too."""
    found: dict[str, str] = {}
    for match in _NAME.finditer(text):
        parts = _NAME_PART.findall(match.group(0))
        for run in (parts, parts[1:]):
            if not run or run[0] in _LINKING:
                continue  # "and Transport Mode" is no name
            name = " ".join(run)
            for initials in (
                "".join(part[0] for part in run),
                "".join(part[0] for part in run if part not in _LINKING),
            ):
                if len(initials) >= 3:
                    found.setdefault(stem(initials.lower()), name)
    return found
