"""What a sentence says how to do, against what a question asks how to do. Plain Python.

A manual's sentence often opens on its aim: "To delete a Recent or Favorite destination, touch
it ...", "To turn chimes off, ...". Asked "how do i set a destination", the Model 3 manual's
sentences on deleting one share every word of the question but its verb, and the chat quoted
them. :func:`opposite_aim` tells a sentence whose aim undoes what the question asks to do (it
deletes what the question adds, turns off what it turns on); ``chat.quoting`` takes
``QuoteSettings.aim_penalty`` off such a unit, and off a span by the share of its words in
them. A sentence with another aim that does not undo the question's ("To navigate to a
location, touch the search bar ...") is left alone: it is often the answer. One whose aim is
the question's own, every term of it (:func:`aim_of`: "To open the glovebox, touch Controls >
Glovebox." for "how do i open the glovebox"), gains ``QuoteSettings.aim_bonus``: it says how,
where a sentence that only mentions the action ("... you are prompted to enter the PIN to open
the glovebox.") may read closer to the question.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from chat.text_units import split_sentences, terms

__all__ = ["aim_of", "aim_verbs", "done_aim", "opposite_aim"]

# "turn on", "turn the seat heater on", "switch it off" (up to three words between).
_SWITCH: Final = r"(?:turn|switch)(?:\s+[\w'-]+){0,3}?"
# Pairs of actions that undo each other, each as the words for it.
_OPPOSITES: Final = (
    (r"add|set|create|save|store", r"delete|remove|clear|erase|forget"),
    (
        rf"enable|activate|{_SWITCH}\s+on|start",
        rf"disable|deactivate|{_SWITCH}\s+off|shut(?:\s+[\w'-]+){{0,3}}?\s+off|stop|cancel",
    ),
    (r"install|attach|fit|connect|pair|insert", r"uninstall|detach|disconnect|unpair|eject"),
    (r"open|unlock|unlatch", r"close|lock|latch"),
    (r"raise|lift", r"lower"),
    (r"fold", r"unfold"),
)
_ACTIONS: Final = tuple(
    (re.compile(rf"\b(?:{one})\b", re.IGNORECASE), re.compile(rf"\b(?:{other})\b", re.IGNORECASE))
    for one, other in _OPPOSITES
)
_BOTH_WAYS: Final = re.compile(r"\b(?:on\s*(?:or|/)\s*off|off\s*(?:or|/)\s*on)\b", re.IGNORECASE)
# A sentence's aim: the clause it opens on, up to its comma ("To delete a Recent or Favorite
# destination,", "To turn chimes off,").
_AIM: Final = re.compile(
    r"^\s*(?:[-*]\s+)?(to\s+(?:[\w'/-]+\s+){0,7}?[\w'/-]+)\s*[,:]", re.IGNORECASE
)


def aim_of(text: str) -> str | None:
    """The aim ``text`` opens on ("To open the glovebox, touch Controls > Glovebox.": "To open
    the glovebox"), or None."""
    aim = _AIM.match(text)
    return aim.group(1) if aim else None


def aim_verbs(text: str) -> set[str]:
    """The verbs, as terms (``chat.text_units.terms``), of the aims that the sentences and
    lines of ``text`` open on ("To top up the washer fluid:\n\n1. Open the hood. ...":
    {"top"}); none when no sentence opens on an aim."""
    found = set()
    for sentence in split_sentences(text):
        aim = aim_of(sentence)
        verb = terms(aim.split(maxsplit=1)[1]) if aim else []
        if verb:
            found.add(verb[0])
    return found


def opposite_aim(question: str) -> Callable[[str], bool]:
    """Whether a sentence opens on an aim that undoes what ``question`` asks to do (see the
    module docstring); never when the question names both actions of a pair, or neither."""
    asked = []  # (what the question asks to do, what undoes it)
    for one, other in _ACTIONS:
        does, undoes = bool(one.search(question)), bool(other.search(question))
        if does != undoes:
            asked.append((one, other) if does else (other, one))

    def opposite(text: str) -> bool:
        aim = aim_of(text) if asked else None
        if aim is None:
            return False
        clause = _BOTH_WAYS.sub("on off", aim)  # "to turn chimes on or off"
        return any(undo.search(clause) and not do.search(clause) for do, undo in asked)

    return opposite


# What an owner says is done already: "we both paired our phones", "i already restarted it",
# "tried resetting the tpms": the manual's way to do it again is not what they ask for. ("how
# do i reset the tpms" asks to do it: "reset" is done only after "already", "have", "just".)
_DONE_VERBS: Final = {
    "pair": ("paired", "pairing"),
    "install": ("installed", "installing"),
    "restart": ("restarted", "restarting", "rebooted", "rebooting", "reboot"),
    "reset": ("reset", "resetting"),
    "replace": ("replaced", "replacing"),
    "update": ("updated", "updating"),
    "calibrate": ("calibrated", "calibrating"),
    "clean": ("cleaned", "cleaning"),
}
_VERB_OF: Final = {form: verb for verb, forms in _DONE_VERBS.items() for form in (verb, *forms)}
_PAST: Final = "|".join(
    form for forms in _DONE_VERBS.values() for form in forms if form.endswith("ed")
)
_PERFECT: Final = rf"{_PAST}|reset"
_TRYING: Final = "|".join(
    form for forms in _DONE_VERBS.values() for form in forms if form.endswith("ing")
)
_DONE: Final = re.compile(
    rf"\b(?:i|we|she|he|they|both)\s+(?:already\s+|just\s+|also\s+|both\s+)?({_PAST})\b|"
    rf"\b(?:already|have|has|i'?ve|we'?ve|just)\s+(?:already\s+|just\s+|both\s+)?({_PERFECT})\b|"
    rf"\btried\s+(?:to\s+)?({_TRYING}|{'|'.join(_DONE_VERBS)}|reboot)\b",
    re.IGNORECASE,
)


def done_aim(question: str) -> Callable[[str], bool]:
    """Whether a sentence opens on an aim that ``question`` says the owner has done already
    ("me and my wife both paired our phones ... how do i make it pick mine first": not "To pair
    a phone, follow these steps"); never when the question says nothing is done."""
    done = {
        _VERB_OF[next(form for form in match.groups() if form).lower()]
        for match in _DONE.finditer(question)
    }

    def again(text: str) -> bool:
        aim = aim_of(text) if done else None
        return aim is not None and any(
            re.search(rf"\bto\s+{verb}\b", aim, re.IGNORECASE) for verb in done
        )

    return again
