"""What a question asks for: its terms, with an owner's words read as a manual's ("how long is
the car" asks for its length, "3 min" speaks of minutes), and whether it asks for an amount or
for a procedure. Plain Python (no Django); the quote composer (``chat.quoting``) scores units
with them.
"""

from __future__ import annotations

import re
from typing import Final

from chat.text_units import MEASURE_NOUNS, terms

__all__ = ["asked_terms", "asks_for_procedure", "asks_for_quantity"]

_QUANTITY: Final = re.compile(
    r"\bhow\s+(?:much|many|long|far|often|fast|heavy|big|high|low|wide|tall|hot|cold|deep|"
    r"soon|quickly|old|slow)\b|\bwhat(?:'s|s|\s+is|\s+are)?\s+(?:the\s+)?(?:\w+\s+)?(?:size|temp\w*|"
    r"pressure|psi|percent\w*|speed|distance|weight|capacity|number|voltage|amps?|amperage|"
    r"length|width|height|clearance|range|limit|interval|torque|dimensions?)\b|"
    r"\bwhen\s+(?:do|does|should|must|will)\b|\bat\s+what\b",
    re.IGNORECASE,
)
_PROCEDURE: Final = re.compile(
    r"\bhow\s+(?:do|can|should|would|could)\s+(?:i|you|we|u)\b|\bhow\s+to\b|"
    r"\bwhat\s+(?:do|should|can)\s+i\s+do\b|\bis\s+there\s+a\s+way\b|\bsteps?\b",
    re.IGNORECASE,
)
# "How long is the car" asks for its length; "how long does it take", for a time.
_MEASURE_NOUN: Final = {**MEASURE_NOUNS, "long": "length"}
_MEASURE: Final = re.compile(
    rf"\bhow\s+({'|'.join(_MEASURE_NOUN)})\b"
    r"(?!\s+(?:does|do|did|will|would|should|can|could|until|before|after|ago|to|for)\b)",
    re.IGNORECASE,
)
# What owners shorten and manuals spell out.
_SHORT_FORMS: Final = {
    "min": "minutes",
    "mins": "minutes",
    "hr": "hours",
    "hrs": "hours",
    "sec": "seconds",
    "secs": "seconds",
}
_SHORT_FORM: Final = re.compile(rf"\b(?:{'|'.join(_SHORT_FORMS)})\b", re.IGNORECASE)


def asked_terms(question: str) -> list[str]:
    """The question's terms, with an owner's words for a measure read as the manual's: "how
    long is the car" also asks for its length, "3 min" speaks of minutes."""
    found = terms(_SHORT_FORM.sub(lambda match: _SHORT_FORMS[match.group(0).lower()], question))
    for match in _MEASURE.finditer(question):
        found.extend(terms(_MEASURE_NOUN[match.group(1).lower()]))
    return list(dict.fromkeys(found))


def asks_for_procedure(question: str) -> bool:
    """Whether ``question`` asks how to do something ("how do I...", "what should I do"): its
    answer is then often a procedure."""
    return bool(_PROCEDURE.search(question))


def asks_for_quantity(question: str) -> bool:
    """Whether ``question`` asks for an amount, a size, a time or a frequency ("how long",
    "what psi", "how often"): its answer then holds a number."""
    return bool(_QUANTITY.search(question))
