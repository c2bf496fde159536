"""A question's identity: the normalized text and hash behind the (chunk, question_hash) key."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

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
