"""The stem of a word as questions and passages are compared by it.

Plain Python (no Django). The English Snowball stemmer, so "charging" meets "charge", with the
irregular past forms it leaves apart read as their base ("forgot" as "forget").
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Final

import snowballstemmer

#: Past forms an owner writes about what happened ("I forgot my PIN", "the handle froze"), with
#: the word a manual uses ("If you forget your PIN"): a stemmer leaves them apart. Only forms
#: that are no other word in a manual ("left", "ground", "led", "saw", "bit" stay as written).
IRREGULAR_PAST: Final = {
    form: base
    for base, forms in {
        "forget": "forgot forgotten",
        "break": "broke broken",
        "freeze": "froze frozen",
        "stick": "stuck",
        "drive": "drove driven",
        "run": "ran",
        "get": "got gotten",
        "begin": "began begun",
        "bring": "brought",
        "buy": "bought",
        "catch": "caught",
        "choose": "chose chosen",
        "fall": "fell fallen",
        "feel": "felt",
        "find": "found",
        "keep": "kept",
        "lose": "lost",
        "make": "made",
        "pay": "paid",
        "send": "sent",
        "sell": "sold",
        "spend": "spent",
        "steal": "stole stolen",
        "take": "took taken",
        "throw": "threw thrown",
        "wake": "woke woken",
        "wear": "wore worn",
        "write": "wrote written",
        "blow": "blew blown",
        "bend": "bent",
        "spin": "spun",
        "strike": "struck",
        "ride": "rode ridden",
        "hang": "hung",
        "hold": "held",
        "tell": "told",
        "shake": "shook shaken",
        "give": "gave given",
        "sit": "sat",
        "stand": "stood",
        "slide": "slid",
        "hide": "hid hidden",
        "hear": "heard",
        "fly": "flew flown",
        "grow": "grew grown",
        "eat": "ate eaten",
    }.items()
    for form in forms.split()
}

# A Snowball stemmer keeps state while it works: one per thread.
_local = threading.local()


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball stem of a lower-cased ``word``, an irregular past form read as its base."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("english")
    return stemmer.stemWord(IRREGULAR_PAST.get(word, word))
