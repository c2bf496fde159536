"""An owner's misspelt word read as the manual's word it misses by a letter ("presure":
"pressure", "recomended": "recommended", "batery": "battery").

Plain Python (no Django). An owner types fast; a word the manual never uses weighs most in the
decline (``chat.declines``: "The manual never mentions 'presure'"), so a misspelling declined a
question whose best passage retrieval had found ("whats the recomended tire presure": the
recommended tire pressures, at similarity 0.70). A word is read as the manual's when all of
these hold:

* the manual does not use it (its stem, or a word it starts);
* it is no English word (pyspellchecker's English word list, 160,000 words): "resale", "tint"
  or "horsepower" are what the owner meant, and a manual that never uses them does not cover
  them, however close "recall" is to "resale";
* it is long enough to carry a slip (:data:`MIN_LETTERS`);
* one edit of it (a letter left out, added or changed, two swapped: Norvig's corrector) is a
  word the manual writes, whose stem at least :data:`MIN_CHUNKS` of its chunks use; the most
  used one where several are. ("extention" is not read as "extended", whose stem is one edit
  from its stem "extent", in a manual that never writes "extension".) A word of
  :data:`TWO_EDITS_FROM` letters or more may miss by two edits ("reccomended", "tempature"),
  when it starts with the same letter; the closest, then the most used, is taken.

An English word the manual does not use is still read as the manual's word when it is the
same word spelt another way (:func:`sound_alikes`: a letter for one that sounds alike, a British
ending): "can I do karaoke in the car" asks about the manual's "Caraoke", and was declined as
never mentioned.

Owners' own words for parts ("frunk") are not misspellings; ``chat.owner_words.spelling_corrected``
leaves them to ``chat.owner_words``.
"""

from __future__ import annotations

import string
import threading
from functools import cache
from typing import TYPE_CHECKING, Final

from spellchecker import SpellChecker

from chat.stemming import stem

if TYPE_CHECKING:
    from chat.text_units import Vocabulary

__all__ = [
    "MIN_CHUNKS",
    "MIN_LETTERS",
    "TWO_EDITS_FROM",
    "corrected",
    "edit_distance",
    "edits",
    "is_english",
    "sound_alikes",
]

#: The shortest word read as a misspelling ("cost" and "coat" are two words).
MIN_LETTERS: Final = 5
#: How many of the manual's chunks must use the word it is read as: a word the manual uses once
#: is too rare to be what the owner meant to write.
MIN_CHUNKS: Final = 2

#: The shortest word read as a misspelling two edits away.
TWO_EDITS_FROM: Final = 8

_load_lock = threading.Lock()


@cache
def _english() -> SpellChecker:
    return SpellChecker(language="en", distance=1)  # about 0.5 s and 35 MB


def is_english(word: str) -> bool:
    """Whether ``word`` (lower case) is an English word (the list loads once per process)."""
    with _load_lock:
        english = _english()
    return word in english


def edits(term: str) -> set[str]:
    """Every string one edit from ``term``: a letter deleted, two neighbours swapped, a letter
    replaced, or one inserted."""
    splits = [(term[:i], term[i:]) for i in range(len(term) + 1)]
    letters = string.ascii_lowercase
    return (
        {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in letters}
        | {a + c + b for a, b in splits for c in letters}
    ) - {term}


def corrected(word: str, vocabulary: Vocabulary) -> str:
    """``word`` as ``vocabulary``'s manual writes the word it misspells, or ``word`` itself
    (see the module docstring for when)."""
    lower = word.lower()
    if len(lower) < MIN_LETTERS or not lower.isalpha():
        return word
    if vocabulary.known(stem(lower), prefix=True):
        return word

    def chunks_using(near: str) -> int:
        return vocabulary.document_frequency.get(stem(near), 0)

    if is_english(lower):
        # the same word spelt another way ("karaoke": the manual's "Caraoke")
        alike = {
            near: used
            for near in sound_alikes(lower) & vocabulary.spellings
            if (used := chunks_using(near)) >= MIN_CHUNKS
        }
        return max(alike, key=lambda near: (alike[near], near)) if alike else word

    # One edit: every string one edit away, looked up (fast); two: the manual's words that
    # could be two away, measured.
    found = {
        near: used
        for near in edits(lower) & vocabulary.spellings
        if (used := chunks_using(near)) >= MIN_CHUNKS
    }
    if found:
        return max(found, key=lambda near: (found[near], near))
    if len(lower) < TWO_EDITS_FROM:
        return word
    two_away = {
        near: (distance, -used)
        for near in vocabulary.spellings
        if near[0] == lower[0]
        and abs(len(near) - len(lower)) <= 2
        and (used := chunks_using(near)) >= MIN_CHUNKS
        and (distance := edit_distance(lower, near, limit=2)) <= 2
    }
    if not two_away:
        return word
    return min(two_away, key=lambda near: (*two_away[near], near))


#: Letters that sound alike, each way round: a word spelt with one for the other is the same
#: word ("karaoke", "Caraoke"; "analyse", "analyze").
_SOUND_ALIKE: Final = (("c", "k"), ("k", "c"), ("s", "z"), ("z", "s"), ("ph", "f"), ("f", "ph"))
#: British and American endings of one word ("theatre", "theater"; "colour", "color").
_ENDINGS: Final = (("our", "or"), ("or", "our"), ("re", "er"), ("er", "re"))


def sound_alikes(word: str) -> set[str]:
    """Spellings of ``word`` (lower case) that read the same: one letter swapped for one that
    sounds alike (:data:`_SOUND_ALIKE`), or a British ending for an American one."""
    found = set()
    for one, other in _SOUND_ALIKE:
        start = word.find(one)
        while start >= 0:
            found.add(word[:start] + other + word[start + len(one) :])
            start = word.find(one, start + 1)
    for one, other in _ENDINGS:
        if word.endswith(one):
            found.add(word[: -len(one)] + other)
    return found - {word}


def edit_distance(a: str, b: str, *, limit: int) -> int:
    """The edits (a letter deleted, inserted or replaced, two neighbours swapped) that turn
    ``a`` into ``b``, or ``limit + 1`` once it is sure to be more than ``limit``."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        if min(row) > limit:
            return limit + 1
        previous2, previous = previous, row
    return min(previous[-1], limit + 1)
